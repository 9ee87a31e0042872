"""Recommenders in the BentoML model store, as ``shopflow-recommender:<version>``.

The same store as the propensity models (``settings.bentoml_home``, set up by
``shopflow.registry.use_model_store``), a different model name. A stored recommender is a
folder with the pickled :class:`~shopflow.recommend.rankers.RankerModel` (``model.pkl``)
and its serving snapshot (``snapshot/*.parquet``); the tag's version is the model
version in the recommender ledger, responses and reports.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shopflow.contract import RECOMMENDER_MODEL

if TYPE_CHECKING:
    from datetime import datetime

    from shopflow.recommend.rankers import RankerModel
    from shopflow.recommend.snapshot import ServingSnapshot
    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

MODEL_NAME = "shopflow-recommender"
MODEL_FILE = "model.pkl"
SNAPSHOT_DIR = "snapshot"


class RecommenderLoadError(RuntimeError):
    """A recommender version is missing from the store or its files cannot be read."""


@dataclass(frozen=True)
class StoredRecommender:
    """A stored recommender, without loading it."""

    version: str
    family: str
    metadata: dict[str, Any]
    created_at: datetime
    path: Path


def save_recommender(settings: Settings, model: RankerModel, snapshot: ServingSnapshot, *,
                     metadata: dict[str, Any]) -> str:
    """Store a ranker and its serving snapshot; returns the new version."""
    from shopflow.registry import code_version, use_model_store
    from shopflow.registry.store import metadata_value

    use_model_store(settings)
    import bentoml

    meta = metadata_value({
        "family": model.family,
        "feature_names": list(model.feature_names),
        "params": dict(model.params),
        "trained_at": model.trained_at.isoformat(),
        "snapshot_cutoff": str(snapshot.cutoff),
        "code_version": code_version(),
        **metadata,
    })
    with bentoml.models.create(MODEL_NAME, metadata=meta,
                               labels={"family": model.family, "kind": RECOMMENDER_MODEL}) as ref:
        with open(ref.path_of(MODEL_FILE), "wb") as handle:
            pickle.dump(model, handle, protocol=pickle.HIGHEST_PROTOCOL)
        snapshot.save(Path(ref.path_of(SNAPSHOT_DIR)))
        version = str(ref.tag.version)
    logger.info("saved %s recommender as %s:%s", model.family, MODEL_NAME, version)
    return version


def _ref(settings: Settings, version: str) -> Any:
    from shopflow.registry.store import get_ref

    return get_ref(settings, MODEL_NAME, version, error=RecommenderLoadError, what=RECOMMENDER_MODEL)


def recommender_digests(settings: Settings, version: str) -> dict[str, str]:
    """``file -> sha256`` of a stored recommender's files, for the ledger at registration."""
    from shopflow.registry.digest import artefact_digests

    return artefact_digests(Path(_ref(settings, version).path))


def list_recommenders(settings: Settings) -> list[StoredRecommender]:
    """Every stored recommender, newest first."""
    from shopflow.registry import use_model_store

    use_model_store(settings)
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        refs = bentoml.models.list(MODEL_NAME)
    except NotFound:
        return []
    stored = [
        StoredRecommender(version=str(r.tag.version), family=str((r.info.labels or {}).get("family")),
                          metadata=dict(r.info.metadata or {}), created_at=r.info.creation_time,
                          path=Path(r.path))
        for r in refs
    ]
    return sorted(stored, key=lambda m: m.created_at, reverse=True)


def load_recommender(settings: Settings, version: str
                     ) -> tuple[RankerModel, ServingSnapshot, dict[str, Any]]:
    """The ranker, its snapshot and its metadata.

    Raises:
        RecommenderLoadError: unknown version, or missing/corrupt files.
    """
    from shopflow.registry.digest import ArtefactMismatch, verify_artefacts

    ref = _ref(settings, version)
    try:  # every recorded file (the ranker and its snapshot) before anything is read
        verify_artefacts(settings, version, Path(ref.path), model=RECOMMENDER_MODEL)
    except ArtefactMismatch as exc:
        raise RecommenderLoadError(str(exc)) from exc
    model, snapshot = read_recommender(Path(ref.path), version)
    return model, snapshot, dict(ref.info.metadata or {})


def read_recommender(folder: Path, version: str) -> tuple[RankerModel, ServingSnapshot]:
    """The ranker and snapshot stored in ``folder`` (verify their digests first).

    Raises:
        RecommenderLoadError: missing or corrupt files, or no RankerModel.
    """
    from shopflow.recommend.rankers import RankerModel
    from shopflow.recommend.snapshot import ServingSnapshot

    try:
        with open(folder / MODEL_FILE, "rb") as handle:
            model = pickle.load(handle)
        snapshot = ServingSnapshot.load(folder / SNAPSHOT_DIR)
    except Exception as exc:  # unpickling and parquet raise nearly anything on bad files
        raise RecommenderLoadError(
            f"recommender {MODEL_NAME}:{version} could not be loaded from {folder}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(model, RankerModel):
        raise RecommenderLoadError(
            f"{MODEL_NAME}:{version} holds a {type(model).__name__}, not a RankerModel"
        )
    return model, snapshot
