"""The serving snapshot: every known user's ranked list at the newest cutoff, precomputed.

Ranking a user's candidates needs their events, five marts and a model: far too slow
for one HTTP request. So when a ranker is saved, its lists for every user active in the
lookback before the newest event (the dbt serving cutoff) are computed once, together
with the popularity list (cold start) and what each user already bought
(``exclude_purchased``). A request is then a dictionary lookup.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from shopflow.recommend.candidates import CandidateConfig, generate_candidates, prepare_window
from shopflow.recommend.dataset import feature_frame
from shopflow.recommend.evaluate import top_k

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

    from shopflow.recommend.rankers import RankerModel
    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

DEPTH = 100
#: The marts keyed by user that the snapshot reads a page of users at a time.
USER_MARTS = ("user_features", "user_item_features", "user_category_features")
#: Chunks of ``batch_users`` per page of mart rows read from the warehouse.
PAGE_CHUNKS = 20
_FILES = ("ranked", "popular", "purchased")


@dataclass
class ServingSnapshot:
    """Precomputed answers at ``cutoff``.

    Attributes:
        cutoff: the instant the lists were computed at (newest event).
        ranked: ``user_id, item_id, score, rank``, up to ``DEPTH`` rows per known user.
        popular: ``item_id, score``, best first: the cold-start list and the filler.
        purchased: ``user_id, item_id`` bought at or before the cutoff.
    """

    cutoff: pd.Timestamp
    ranked: pd.DataFrame
    popular: pd.DataFrame
    purchased: pd.DataFrame

    def save(self, folder: Path) -> None:
        import pandas as pd

        from shopflow.atomic import atomic_path

        folder.mkdir(parents=True, exist_ok=True)
        frames = {name: getattr(self, name) for name in _FILES}
        frames["cutoff"] = pd.DataFrame({"cutoff": [self.cutoff]})
        for name, frame in frames.items():  # each file whole or not at all (crash-safe)
            with atomic_path(folder / f"{name}.parquet") as tmp:
                frame.to_parquet(tmp, index=False)

    @classmethod
    def load(cls, folder: Path) -> ServingSnapshot:
        import pandas as pd

        frames = {name: pd.read_parquet(folder / f"{name}.parquet") for name in _FILES}
        cutoff = pd.Timestamp(pd.read_parquet(folder / "cutoff.parquet")["cutoff"].iloc[0])
        return cls(cutoff=cutoff, **frames)


def serving_cutoff(settings: Settings) -> pd.Timestamp:
    """The dbt serving snapshot's cutoff (newest event), else the newest training cutoff."""
    from shopflow.recommend.data import load_cutoffs

    cutoffs = load_cutoffs(settings)
    if cutoffs.empty:
        raise ValueError("int_cutoffs is empty: the warehouse holds no events")
    serving = cutoffs.loc[~cutoffs["is_training_cutoff"], "cutoff_time"]
    newest: pd.Timestamp = (serving if len(serving) else cutoffs["cutoff_time"]).max()
    return newest


def build_snapshot(
    settings: Settings,
    model: RankerModel,
    *,
    events: pd.DataFrame | None = None,
    config: CandidateConfig | None = None,
    depth: int = DEPTH,
    batch_users: int = 1000,
) -> ServingSnapshot:
    """Rank every known user's candidates at the serving cutoff with ``model``.

    The serving cutoff's window is read once (``events`` when given, else the
    warehouse); users are ranked ``batch_users`` at a time, so the feature frame of one
    chunk (about 100 candidates x ~100 features per user) is what the chunk costs.
    """
    import pandas as pd

    from shopflow.recommend.data import EventWindows, load_mart

    started = time.perf_counter()
    windows = EventWindows(settings, events)
    cutoff = serving_cutoff(settings)
    items_at_cutoff = load_mart(settings, "item_features", cutoffs=[cutoff])
    users = serving_users(settings, cutoff)
    lookback_days = settings.task.lookback.total_seconds() / 86_400
    # once per cutoff: the candidate window; the user-keyed marts are read a page of
    # users at a time (sorted by user), each chunk (a range of the sorted users) slices
    # its page, so no mart is held whole
    window = prepare_window(windows.window(cutoff, settings.task.lookback), cutoff=cutoff,
                            lookback=settings.task.lookback, config=config)
    page_users = batch_users * PAGE_CHUNKS
    pieces = []
    for page_start in range(0, len(users), page_users):
        page = users[page_start:page_start + page_users]
        by_user = {name: _sorted_by_user(load_user_range(settings, name, cutoff, page[0],
                                                         page[-1]))
                   for name in USER_MARTS}
        for start in range(0, len(page), batch_users):
            chunk = page[start:start + batch_users]
            candidates = window.candidates(chunk)
            if candidates.empty:
                continue
            sliced = {name: _user_range(frame, chunk[0], chunk[-1])
                      for name, frame in by_user.items()}
            sliced["item_features"] = items_at_cutoff
            frame = feature_frame(candidates, sliced, lookback_days=lookback_days)
            pieces.append(top_k(frame, model.score(frame), depth))
            done = page_start + min(start + batch_users, len(page))
            logger.info("snapshot: ranked %d/%d users (%.0f users/s)", done, len(users),
                        done / max(time.perf_counter() - started, 1e-9))
        del by_user
    stats = window.stats
    ranked = (pd.concat(pieces, ignore_index=True) if pieces
              else pd.DataFrame(columns=["user_id", "cutoff_time", "item_id", "score", "rank"]))
    items, scores = stats.popular_items(depth)
    snapshot = ServingSnapshot(
        cutoff=cutoff,
        ranked=ranked[["user_id", "item_id", "score", "rank"]].reset_index(drop=True),
        popular=pd.DataFrame({"item_id": items, "score": scores}),
        purchased=windows.purchased(cutoff),
    )
    logger.info("snapshot at %s: %d users, %d rows in %.1fs", cutoff, len(users),
                len(snapshot.ranked), time.perf_counter() - started)
    return snapshot


def serving_users(settings: Settings, cutoff: pd.Timestamp) -> np.ndarray:
    """Every user with a ``user_features`` row at ``cutoff``, sorted (text ids)."""
    from shopflow.recommend.data import load_mart_column

    ids = load_mart_column(settings, "user_features", "user_id", cutoff)
    return np.asarray(sorted(ids), dtype=object)


def load_user_range(settings: Settings, name: str, cutoff: pd.Timestamp, first: str,
                    last: str) -> pd.DataFrame:
    """A user-keyed mart's rows at ``cutoff`` whose user is in ``[first, last]``."""
    from shopflow.recommend.data import load_mart

    return load_mart(settings, name, cutoffs=[cutoff], users=(first, last))


def _sorted_by_user(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` ordered by ``user_id`` (stable: rows of one user keep their order)."""
    frame = frame[frame["user_id"].notna()]
    return frame.sort_values("user_id", kind="mergesort").reset_index(drop=True)


def _user_range(frame: pd.DataFrame, first: str, last: str) -> pd.DataFrame:
    """The rows of a frame sorted by user whose user is in ``[first, last]`` (binary search)."""
    ids = frame["user_id"].to_numpy()
    lo = int(np.searchsorted(ids, first, side="left"))
    hi = int(np.searchsorted(ids, last, side="right"))
    return frame.iloc[lo:hi]


def popularity_snapshot(settings: Settings, *, events: pd.DataFrame | None = None,
                        depth: int = DEPTH) -> ServingSnapshot:
    """A snapshot with no ranker: every user gets the popularity list (cold start)."""
    import pandas as pd

    from shopflow.recommend.data import EventWindows

    windows = EventWindows(settings, events)
    newest = windows.newest()
    cutoff = newest if newest is not None else pd.Timestamp("1970-01-01")
    lookback = settings.task.lookback
    _, stats = generate_candidates(windows.window(cutoff, lookback), cutoff=cutoff,
                                   lookback=lookback, users=[])
    items, scores = stats.popular_items(depth)
    bought = windows.purchased()
    return ServingSnapshot(
        cutoff=cutoff,
        ranked=pd.DataFrame({"user_id": pd.Series(dtype=object), "item_id": pd.Series(dtype=object),
                             "score": pd.Series(dtype="float64"), "rank": pd.Series(dtype="int64")}),
        popular=pd.DataFrame({"item_id": items, "score": scores}),
        purchased=bought.reset_index(drop=True),
    )


def published_popularity_snapshot(settings: Settings, *, depth: int = DEPTH) -> ServingSnapshot:
    """Popularity from the last *published* marts (``item_features`` at its newest cutoff).

    The published Parquet snapshots are what passed the marts quality gate, and reading
    them takes no warehouse lock, so a serving process can use them while a DAG run is
    writing the warehouse. Items are scored as candidate generation scores popularity
    (purchases, plus a small weight for views and carts). Nobody has a personal list and
    purchases are unknown (``exclude_purchased`` has nothing to exclude).

    Raises:
        FileNotFoundError: nothing was published yet.
        ValueError: the published item features are empty.
    """
    import pandas as pd
    import pyarrow.parquet as pq

    from shopflow.recommend.candidates import _VIEW_POPULARITY
    from shopflow.transform import marts_dir

    path = marts_dir(settings) / "item_features.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"no published item_features at {path} (no pipeline run yet)")
    items = pq.read_table(path, columns=["item_id", "cutoff_time", "item_views_lookback",
                                         "item_carts_lookback", "item_purchases_lookback"]
                          ).to_pandas()
    if items.empty:
        raise ValueError(f"the published item_features at {path} are empty")
    cutoff = pd.Timestamp(items["cutoff_time"].max())
    latest = items[items["cutoff_time"] == cutoff]
    score = (latest["item_purchases_lookback"].fillna(0.0)
             + _VIEW_POPULARITY * (latest["item_views_lookback"].fillna(0.0)
                                   + latest["item_carts_lookback"].fillna(0.0)))
    popular = (pd.DataFrame({"item_id": latest["item_id"].astype(str).to_numpy(),
                             "score": score.to_numpy(dtype=np.float64)})
               .sort_values(["score", "item_id"], ascending=[False, True], kind="mergesort")
               .head(depth).reset_index(drop=True))
    return ServingSnapshot(
        cutoff=cutoff,
        ranked=pd.DataFrame({"user_id": pd.Series(dtype=object), "item_id": pd.Series(dtype=object),
                             "score": pd.Series(dtype="float64"), "rank": pd.Series(dtype="int64")}),
        popular=popular,
        purchased=pd.DataFrame({"user_id": pd.Series(dtype=object),
                                "item_id": pd.Series(dtype=object)}),
    )
