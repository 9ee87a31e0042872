"""Point-in-time ranking data: candidates + dbt features + labels, per cutoff, split by time.

For every cutoff the candidates of each buyer are joined with what dbt computed at that
cutoff (``user_features``, ``item_features``, ``user_item_features``,
``user_category_features``) and labelled with ``purchase_item_labels``. The split is out
of time and *purged*: a part's label windows end before the next part's first cutoff, so
no model is trained or selected on purchases that happen inside the test window.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from shopflow.features.schema import widest_window_column
from shopflow.recommend.candidates import CandidateConfig, WindowStats, generate_candidates

if TYPE_CHECKING:
    import pandas as pd

    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

KEYS = ("user_id", "item_id", "cutoff_time")
#: Columns of a ranking frame that are never features.
NON_FEATURES = frozenset({"user_id", "item_id", "cutoff_time", "category_id", "label",
                          "label_window_end", "last_event_time", "is_training_cutoff"})
_USER_ITEM_FILL = {"ui_recency_rank": 999.0, "uc_rank": 99.0}


class RankingDataError(ValueError):
    """Not enough history for an honest out-of-time evaluation (names what is missing)."""


@dataclass(frozen=True)
class RecommendConfig:
    """Sizes and budgets of a recommendation run (all have defaults)."""

    candidates: CandidateConfig = field(default_factory=CandidateConfig)
    max_train_cutoffs: int = 6
    max_train_users_per_cutoff: int = 2000
    max_eval_users_per_cutoff: int = 5000
    train_negatives: int = 50
    purge: bool = True
    seed: int = 42
    threads: int = 1

    def describe(self) -> dict[str, Any]:
        out = asdict(self)
        out["candidates"] = self.candidates.describe()
        return out


@dataclass
class CutoffData:
    """Everything one cutoff contributes: known buyers' ranking rows and all its buyers."""

    cutoff: pd.Timestamp
    frame: pd.DataFrame  # candidates x features, with label (known users only)
    labels: pd.DataFrame  # user_id, item_id, cutoff_time of every buyer (cold ones too)
    slices: pd.DataFrame  # user_id, cutoff_time, slice, known
    stats: WindowStats
    candidates_all: pd.DataFrame  # user_id, item_id, cutoff_time, incl. cold buyers


@dataclass
class RankingData:
    """The three parts of an out-of-time split."""

    train: list[CutoffData]
    validation: list[CutoffData]
    test: list[CutoffData]
    feature_names: list[str]
    lookback_days: float

    def frame(self, part: str) -> pd.DataFrame:
        import pandas as pd

        frame: pd.DataFrame = pd.concat([c.frame for c in getattr(self, part)], ignore_index=True)
        return frame

    def describe(self) -> dict[str, Any]:
        return {
            part: {
                "cutoffs": [str(c.cutoff) for c in getattr(self, part)],
                "rows": int(sum(len(c.frame) for c in getattr(self, part))),
                "buyers": int(sum(c.slices.shape[0] for c in getattr(self, part))),
            }
            for part in ("train", "validation", "test")
        }


def split_cutoffs(cutoffs: pd.DataFrame, *, validation: int, test: int, max_train: int,
                  purge: bool) -> dict[str, list[pd.Timestamp]]:
    """Training cutoffs into train < validation < test (newest last).

    With ``purge``, each earlier part keeps only cutoffs whose label window ends at or
    before the next part's first cutoff.

    Raises:
        RankingDataError: too few training cutoffs for the three parts.
    """
    training = cutoffs[cutoffs["is_training_cutoff"]].sort_values("cutoff_time")
    times = list(training["cutoff_time"])
    ends = dict(zip(training["cutoff_time"], training["label_window_end"], strict=True))
    if len(times) < validation + test + 1:
        raise RankingDataError(
            f"{len(times)} training cutoff(s) but an out-of-time split needs at least "
            f"{validation + test + 1}; use a longer event history or a shorter "
            "task.cutoff_every / task.horizon"
        )
    test_part = times[-test:]
    rest = times[:-test]
    if purge:
        rest = [c for c in rest if ends[c] <= test_part[0]]
    validation_part = rest[-validation:] if len(rest) >= validation else []
    rest = rest[: len(rest) - len(validation_part)]
    if purge and validation_part:
        rest = [c for c in rest if ends[c] <= validation_part[0]]
    train_part = rest[-max_train:]
    if not validation_part or not train_part:
        raise RankingDataError(
            f"after purging overlapping label windows ({len(times)} training cutoffs, "
            f"horizon up to {training['label_window_end'].iloc[-1] - training['cutoff_time'].iloc[-1]}) "
            "too few cutoffs are left for train and validation; use a longer history or a "
            "shorter task.horizon"
        )
    return {"train": train_part, "validation": validation_part, "test": test_part}


def feature_frame(
    candidates: pd.DataFrame,
    marts: dict[str, pd.DataFrame],
    *,
    lookback_days: float,
) -> pd.DataFrame:
    """Join candidate pairs with the dbt features of their cutoff.

    Pairs the user never touched get zero interaction counts and "not within the
    lookback" durations; NaN is left only where a value truly is unknown (e.g. a price).
    """
    frame = candidates.merge(
        marts["user_item_features"].drop(columns=["category_id", "last_event_time"],
                                         errors="ignore"),
        on=list(KEYS), how="left",
    )
    frame = frame.merge(marts["user_category_features"], on=["user_id", "category_id", "cutoff_time"],
                        how="left")
    frame = frame.merge(marts["item_features"], on=["item_id", "cutoff_time"], how="left")
    frame = frame.merge(marts["user_features"], on=["user_id", "cutoff_time"], how="left")
    return fill_interactions(frame, lookback_days=lookback_days)


def fill_interactions(frame: pd.DataFrame, *, lookback_days: float) -> pd.DataFrame:
    """The user-item and user-category columns (``ui_``, ``uc_``) of a joined frame as
    float64, a pair the user never touched filled as no interaction (in place)."""
    for column in frame.columns:
        if column.startswith(("ui_", "uc_")):
            if column in _USER_ITEM_FILL:
                default = _USER_ITEM_FILL[column]
            elif "days_since" in column:
                default = lookback_days
            else:
                default = 0.0
            frame[column] = frame[column].astype("float64").fillna(default)
    return frame


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """Numeric columns that are not keys or labels, in frame order."""
    import pandas as pd

    return [c for c in frame.columns if c not in NON_FEATURES
            and (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))
            and not pd.api.types.is_datetime64_any_dtype(frame[c])]


def _sample(users: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    if len(users) <= limit:
        return users
    return np.sort(rng.choice(users, size=limit, replace=False))


def build_cutoff(
    settings: Settings,
    events: pd.DataFrame,
    cutoff: pd.Timestamp,
    labels: pd.DataFrame,
    marts: dict[str, pd.DataFrame],
    *,
    config: RecommendConfig,
    max_users: int,
    negatives: int | None,
    rng: np.random.Generator,
) -> CutoffData:
    """Candidates, features and labels of one training cutoff's buyers."""
    import pandas as pd

    lookback_days = settings.task.lookback.total_seconds() / 86_400
    bought = labels[labels["cutoff_time"] == cutoff]
    buyers = _sample(np.asarray(sorted(bought["user_id"].unique()), dtype=object), max_users, rng)
    bought = bought[bought["user_id"].isin(set(buyers))]
    users = marts["user_features"]
    users = users[users["cutoff_time"] == cutoff]
    known = set(users["user_id"])
    # bought in the lookback: the task's widest purchases window (purchases_90d, ...)
    bought_in_lookback = widest_window_column(users.columns, "purchases") or "purchases_lookback"
    returning = set(users.loc[users[bought_in_lookback] > 0, "user_id"])
    slices = pd.DataFrame({"user_id": buyers, "cutoff_time": cutoff})
    slices["known"] = slices["user_id"].isin(known)
    slices["slice"] = np.where(slices["user_id"].isin(returning), "returning", "new")

    candidates, stats = generate_candidates(
        events, cutoff=cutoff, lookback=settings.task.lookback, users=buyers,
        config=config.candidates,
    )
    candidates_all = candidates[[*KEYS, *(c for c in candidates.columns if c.startswith("src_"))]]
    candidates = candidates[candidates["user_id"].isin(known)]
    keyed = bought[list(KEYS)].drop_duplicates().assign(label=1)
    candidates = candidates.merge(keyed, on=list(KEYS), how="left")
    candidates["label"] = candidates["label"].fillna(0).astype(np.int32)
    if negatives is not None:
        candidates = _downsample_negatives(candidates, negatives, rng)
    frame = feature_frame(candidates, marts, lookback_days=lookback_days)
    frame = frame.sort_values(["cutoff_time", "user_id", "item_id"], kind="mergesort")
    return CutoffData(cutoff=cutoff, frame=frame.reset_index(drop=True),
                      labels=bought[list(KEYS)].reset_index(drop=True), slices=slices,
                      stats=stats, candidates_all=candidates_all)


def _downsample_negatives(frame: pd.DataFrame, negatives: int,
                          rng: np.random.Generator) -> pd.DataFrame:
    """Training groups: keep users with a bought candidate, all positives, some negatives."""
    has_pos = frame.groupby("user_id")["label"].transform("max") > 0
    frame = frame[has_pos]
    noise = rng.random(len(frame))
    order = frame.assign(_r=np.where(frame["label"] > 0, -1.0, noise))
    rank = order.groupby("user_id")["_r"].rank(method="first")
    return frame[(frame["label"] > 0) | (rank <= negatives + 1)]


def build_ranking_data(
    settings: Settings,
    *,
    config: RecommendConfig | None = None,
    events: pd.DataFrame | None = None,
) -> RankingData:
    """Load the warehouse and build train/validation/test ranking data.

    Cutoff by cutoff: each reads its own window of events (``events`` when given, else
    the warehouse, one query per window) and its own mart rows, so memory holds one
    cutoff's inputs at a time and time grows with events x cutoffs.

    Raises:
        RankingDataError: too few cutoffs, or no buyer in some part.
        RecommendDataError: a table is missing from the warehouse.
    """
    from shopflow.recommend.data import EventWindows, load_cutoffs, load_mart

    config = config or RecommendConfig()
    started = time.perf_counter()
    windows = EventWindows(settings, events)
    cutoffs = load_cutoffs(settings)
    parts = split_cutoffs(
        cutoffs, validation=settings.training.validation_cutoffs,
        test=settings.training.test_cutoffs, max_train=config.max_train_cutoffs,
        purge=config.purge,
    )
    rng = np.random.default_rng(config.seed)
    built: dict[str, list[CutoffData]] = {}
    for part, part_cutoffs in parts.items():
        training = part == "train"
        built[part] = []
        for cutoff in part_cutoffs:
            tick = time.perf_counter()
            # one cutoff at a time: its window of events, its labels, and the marts'
            # rows of that cutoff (user-keyed ones: its buyers' rows only)
            labels = load_mart(settings, "purchase_item_labels", cutoffs=[cutoff])
            marts = {name: load_mart(settings, name, cutoffs=[cutoff],
                                     buyers_only=name != "item_features")
                     for name in ("user_features", "item_features", "user_item_features",
                                  "user_category_features")}
            one = build_cutoff(
                settings, windows.window(cutoff, settings.task.lookback), cutoff, labels, marts,
                config=config,
                max_users=config.max_train_users_per_cutoff if training
                else config.max_eval_users_per_cutoff,
                negatives=config.train_negatives if training else None, rng=rng,
            )
            del marts, labels
            built[part].append(one)
            logger.info("%s cutoff %s: %d buyers, %d ranking rows in %.1fs", part, cutoff,
                        len(one.slices), len(one.frame), time.perf_counter() - tick)
        if not any(len(c.labels) for c in built[part]):
            raise RankingDataError(f"no buyer in the {part} cutoffs {part_cutoffs}: nothing to rank")
    first = next((c.frame for c in built["train"] if len(c.frame)), None)
    if first is None:
        raise RankingDataError(
            f"no buyer at the training cutoffs {parts['train']} had a bought item among their "
            "candidates: nothing to learn from (more history or larger candidate sets needed)"
        )
    data = RankingData(train=built["train"], validation=built["validation"], test=built["test"],
                       feature_names=feature_columns(first),
                       lookback_days=settings.task.lookback.total_seconds() / 86_400)
    logger.info("ranking data ready in %.1fs: %s", time.perf_counter() - started, data.describe())
    return data
