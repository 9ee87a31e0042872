"""A tiny but real production setup, for the serving tests, the benchmark and demos.

Everything is the real thing at a small size: user features written to the Feast online
store through the Feast part's definitions, a :class:`PropensityModel` (the baseline
family's logistic pipeline) fitted on a few hundred synthetic rows, saved with
``shopflow.registry.save_model``, recorded and promoted in the ledger. Nothing here is
used by the service itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from shopflow.contract import RECOMMENDER_MODEL

if TYPE_CHECKING:
    import pandas as pd

    from shopflow.settings import Settings
    from shopflow.training.model import PropensityModel

logger = logging.getLogger(__name__)

SANDBOX_FEATURES = (
    "recency_days",
    "tenure_days",
    "events_30d",
    "purchases_30d",
    "monetary_30d",
)


@dataclass(frozen=True)
class Sandbox:
    """What :func:`build_sandbox` set up."""

    user_ids: list[str]
    versions: list[str]


def synthetic_user_features(n_users: int, *, seed: int = 0, prefix: str = "") -> pd.DataFrame:
    """One row of every user feature per user, at one cutoff (now), plausibly distributed."""
    import pandas as pd

    from shopflow.features.schema import USER_FEATURES

    rng = np.random.default_rng(seed)
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    frame = pd.DataFrame({"user_id": [f"{prefix}{10_000 + i}" for i in range(n_users)]})
    for name in USER_FEATURES:
        frame[name] = rng.gamma(shape=1.5, scale=5.0, size=n_users).round(3)
    frame["is_returning_buyer"] = (rng.random(n_users) < 0.4).astype(float)
    frame["cutoff_time"] = now
    frame["created_at"] = now
    return frame


def write_online_features(settings: Settings, frame: pd.DataFrame) -> None:
    """Register Shopflow's Feast objects, write ``frame`` online and as the offline snapshot."""
    from shopflow.features.schema import USER_TABLE
    from shopflow.features.store import apply_definitions, get_store

    store = get_store(settings)
    apply_definitions(settings, store=store)
    store.write_to_online_store(USER_TABLE.view_name, frame)
    # the offline snapshot too, as after a pipeline run (the service takes golden ids there)
    path = USER_TABLE.offline_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    logger.info("wrote %d users to the online store", len(frame))


def train_tiny_model(
    frame: pd.DataFrame,
    *,
    seed: int = 0,
    c: float = 1.0,
    feature_service: str = "propensity_v2",
    feature_names: tuple[str, ...] = SANDBOX_FEATURES,
) -> tuple[PropensityModel, float]:
    """Fit the baseline family's pipeline on synthetic labels; returns (model, base rate)."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from shopflow.training.families.baseline import LogisticPredictor
    from shopflow.training.model import PropensityModel

    rng = np.random.default_rng(seed)
    names = list(feature_names)
    x = frame.reindex(columns=names).to_numpy(dtype=np.float64)
    centred = np.nan_to_num(x - np.nanmean(np.where(np.isnan(x), 0.0, x), axis=0))
    logits = centred @ rng.normal(0, 0.3, len(names)) - 0.5
    logits[:2] = (-5.0, 5.0)  # both classes, whatever the features
    y = (rng.random(len(x)) < 1 / (1 + np.exp(-logits))).astype(int)
    pipeline = make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True),
        StandardScaler(),
        LogisticRegression(C=c, max_iter=300, random_state=seed),
    )
    pipeline.fit(x, y)
    model = PropensityModel(
        family="baseline",
        feature_names=names,
        feature_service=feature_service,
        params={"C": c, "seed": seed},
        predictor=LogisticPredictor(pipeline, list(range(len(names)))),
    )
    return model, float(y.mean())


def publish_model(
    settings: Settings,
    model: PropensityModel,
    *,
    base_rate: float,
    promote: bool = True,
    actor: str = "sandbox",
    reason: str = "sandbox model",
    metrics: dict[str, Any] | None = None,
    compile_rows: np.ndarray | None = None,
    compiled: bool = True,
) -> str:
    """Save to the model store, record as a candidate, and (optionally) promote it.

    Like training's registration, a compiled predictor is stored beside the model when
    it agrees with the library on ``compile_rows`` plus probe rows (``compiled=False``:
    none, as for a model registered before compiled inference).
    """
    from shopflow.ledger import Ledger
    from shopflow.registry import model_digests, save_model
    from shopflow.training.compiled import compile_checked

    metrics = {"roc_auc": 0.5, "log_loss": 0.69, **(metrics or {})}
    compilation = compile_checked(model, compile_rows) if compiled else None
    version = save_model(
        settings, model, compiled=compilation.predictor if compilation else None,
        metadata={"base_rate": base_rate, "metrics": metrics,
                  **({"compiled": compilation.facts} if compilation else {})})
    with Ledger(settings.ledger_url) as ledger:
        ledger.record_candidate(version=version, family=model.family, metrics=metrics,
                                params=model.params, feature_service=model.feature_service,
                                artefacts=model_digests(settings, version))
        if promote:
            ledger.promote(version, actor=actor, reason=reason)
    return version


def build_sandbox(settings: Settings, *, users: int = 200, models: int = 1,
                  seed: int = 0) -> Sandbox:
    """Online features for ``users`` users and ``models`` models (the last one promoted)."""
    settings.ensure_dirs()
    frame = synthetic_user_features(users, seed=seed)
    write_online_features(settings, frame)
    versions = []
    for i in range(models):
        model, base_rate = train_tiny_model(frame, seed=seed + i, c=0.1 * (i + 1))
        versions.append(publish_model(settings, model, base_rate=base_rate,
                                      promote=i == models - 1, reason=f"sandbox model {i}"))
    return Sandbox(user_ids=frame["user_id"].tolist(), versions=versions)


@dataclass(frozen=True)
class RecommenderSandbox:
    """What :func:`build_recommender_sandbox` set up.

    Attributes:
        user_ids: users with a personal list.
        purchased: user -> items the snapshot says they bought (some are in their list).
        versions: stored recommender versions, oldest first (the last one promoted).
    """

    user_ids: list[str]
    purchased: dict[str, list[str]]
    versions: list[str]


def synthetic_recommender_snapshot(user_ids: list[str], *, items: int = 80, depth: int = 30,
                                   seed: int = 0) -> Any:
    """A serving snapshot: ``depth`` ranked items per user, a popularity list, purchases.

    Each user bought three of their own top ten items, so ``exclude_purchased`` visibly
    changes their answer.
    """
    import pandas as pd

    from shopflow.recommend.snapshot import ServingSnapshot

    rng = np.random.default_rng(seed)
    catalogue = np.array([f"item_{i:04d}" for i in range(items)], dtype=object)
    ranked, bought = [], []
    for user in user_ids:
        chosen = rng.choice(catalogue, size=min(depth, items), replace=False)
        scores = np.sort(rng.random(len(chosen)))[::-1] + 1.0
        ranked.append(pd.DataFrame({"user_id": user, "item_id": chosen, "score": scores,
                                    "rank": np.arange(1, len(chosen) + 1)}))
        bought.append(pd.DataFrame({"user_id": user,
                                    "item_id": rng.choice(chosen[:10], 3, replace=False)}))
    popularity = np.sort(rng.gamma(2.0, 10.0, items))[::-1]
    return ServingSnapshot(
        cutoff=pd.Timestamp(datetime.now(UTC).replace(tzinfo=None, microsecond=0)),
        ranked=pd.concat(ranked, ignore_index=True),
        popular=pd.DataFrame({"item_id": rng.permutation(catalogue), "score": popularity}),
        purchased=pd.concat(bought, ignore_index=True),
    )


def publish_recommender(settings: Settings, snapshot: Any, *, promote: bool = True,
                        actor: str = "sandbox", reason: str = "sandbox recommender",
                        metrics: dict[str, Any] | None = None, seed: int = 0) -> str:
    """Store a recommender (a popularity ranker + ``snapshot``), record it, maybe promote it."""
    from shopflow.ledger import Ledger
    from shopflow.recommend.rankers import PopularityPredictor, RankerModel
    from shopflow.recommend.store import recommender_digests, save_recommender

    metrics = {"ndcg@10": 0.1, "recall@10": 0.1, **(metrics or {})}
    model = RankerModel(family="sandbox", feature_names=["cand_popularity"],
                        params={"seed": seed}, predictor=PopularityPredictor())
    version = save_recommender(settings, model, snapshot, metadata={"metrics": metrics})
    with Ledger(settings.ledger_url, model=RECOMMENDER_MODEL) as ledger:
        ledger.record_candidate(version=version, family=model.family, metrics=metrics,
                                params=model.params, feature_service="recommend_v1",
                                artefacts=recommender_digests(settings, version))
        if promote:
            ledger.promote(version, actor=actor, reason=reason)
    return version


def build_recommender_sandbox(settings: Settings, user_ids: list[str], *, models: int = 1,
                              seed: int = 0) -> RecommenderSandbox:
    """``models`` stored recommenders with lists for ``user_ids`` (the last one promoted)."""
    settings.ensure_dirs()
    versions, snapshot = [], None
    for i in range(models):
        snapshot = synthetic_recommender_snapshot(user_ids, seed=seed + i)
        versions.append(publish_recommender(settings, snapshot, promote=i == models - 1,
                                            reason=f"sandbox recommender {i}", seed=seed + i))
    assert snapshot is not None or not models
    purchased = ({} if snapshot is None else
                 snapshot.purchased.groupby("user_id")["item_id"].agg(list).to_dict())
    return RecommenderSandbox(user_ids=list(user_ids), purchased=purchased, versions=versions)
