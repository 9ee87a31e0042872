"""A model as the service holds it: the predictor plus the facts /metadata reports.

A :class:`ServedModel` is immutable. The hot swap replaces the service's reference to one
with a reference to another in a single assignment, so a request that has picked up a
model keeps scoring with it even while the next one takes over.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from shopflow.serving.alias_follower import ModelRefused

if TYPE_CHECKING:
    import pandas as pd

    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

# metadata keys (registry metadata, then ledger metrics) that may hold the training base rate
_BASE_RATE_KEYS = ("base_rate", "train_base_rate", "positive_rate", "label_rate", "train_label_rate")
KNOWN_COLUMN = "known"


@dataclass(frozen=True)
class ServedModel:
    """A loaded production (or shadow) model.

    Attributes:
        version: the model version (BentoML tag version, ledger version).
        model: the :class:`~shopflow.training.model.PropensityModel`.
        family: model family.
        feature_service: Feast feature service that produces the model's features.
        feature_names: columns the model reads.
        metrics: evaluation metrics (ledger, else registry metadata).
        trained_at: when training finished, ISO 8601.
        cold_start_probability: the score for a shopper without features (base rate).
        cold_start_source: where that number came from, for /metadata.
        loaded_at: when this process loaded it.
    """

    version: str
    model: Any
    family: str
    feature_service: str
    feature_names: tuple[str, ...]
    metrics: dict[str, Any]
    trained_at: str | None
    cold_start_probability: float
    cold_start_source: str
    loaded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    fast_path: bool = False

    def score(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """P(buy) per row of an online-feature frame, cold start where the user is unknown.

        Args:
            features: one row per requested user, in order, with a boolean ``known``
                column (False: no features online for that user).

        Returns:
            ``(probabilities, known)`` — two arrays in the frame's row order.
        """
        n = len(features)
        if KNOWN_COLUMN in features.columns:
            known = features[KNOWN_COLUMN].to_numpy(dtype=bool, na_value=False)
        else:
            known = np.ones(n, dtype=bool)
        probabilities = np.full(n, self.cold_start_probability, dtype=np.float64)
        if known.any():
            rows = features if known.all() else features.loc[known]
            probabilities[known] = self.model.predict_proba(rows)
        return probabilities, known

    def score_matrix(self, matrix: np.ndarray, known: np.ndarray) -> np.ndarray:
        """Like :meth:`score`, on a matrix already in ``feature_names`` order.

        Exactly ``PropensityModel.predict_proba`` without its pandas alignment (the
        runtime verifies equality on golden rows before using it for a model).
        """
        probabilities = np.full(len(known), self.cold_start_probability, dtype=np.float64)
        if known.any():
            rows = matrix if known.all() else matrix[known]
            raw = np.asarray(self.model.predictor.predict(rows), dtype=np.float64)
            probabilities[known] = np.clip(raw.reshape(-1), 0.0, 1.0)
        return probabilities

    def describe(self) -> dict[str, Any]:
        """The JSON facts of ``GET /metadata``."""
        return {
            "version": self.version,
            "family": self.family,
            "feature_service": self.feature_service,
            "feature_names": list(self.feature_names),
            "metrics": self.metrics,
            "trained_at": self.trained_at,
            "cold_start_probability": self.cold_start_probability,
            "cold_start_source": self.cold_start_source,
            "loaded_at": self.loaded_at,
            "fast_path": self.fast_path,
        }


def _finite_probability(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and 0.0 <= number <= 1.0 else None


def cold_start_probability(
    model: Any, metadata: dict[str, Any], metrics: dict[str, Any]
) -> tuple[float, str]:
    """The score for an unknown shopper, and where it came from.

    The training base rate is the honest answer for someone we know nothing about; it is
    read from the registry metadata or the ledger metrics. Models saved without it get the
    model's own score for a shopper with every feature missing (each family imputes).
    """
    for source_name, source in (("metadata", metadata), ("metrics", metrics)):
        for key in _BASE_RATE_KEYS:
            value = _finite_probability(source.get(key))
            if value is not None:
                return value, f"{source_name}.{key}"
    import pandas as pd

    empty = pd.DataFrame([{name: np.nan for name in model.feature_names}])
    value = _finite_probability(model.predict_proba(empty)[0])
    if value is None:
        raise ModelRefused("model has no base rate and gives no finite score for an empty row")
    return value, "model(all features missing)"


def load_served_model(settings: Settings, version: str) -> ServedModel:
    """Load ``version`` from the model store and gather its facts.

    Raises:
        ModelRefused: the version is not in the store or cannot be unpickled.
    """
    from shopflow.ledger import Ledger
    from shopflow.registry import ModelLoadError, load_model, model_info

    try:
        info = model_info(settings, version)
        model = load_model(settings, version)
    except ModelLoadError as exc:
        raise ModelRefused(str(exc)) from exc
    except Exception as exc:  # a broken store entry must never take the service down
        raise ModelRefused(f"model {version} could not be loaded: {type(exc).__name__}: {exc}") from exc
    metadata = dict(info.metadata)
    metrics: dict[str, Any] = dict(metadata.get("metrics") or {})
    ledger = Ledger(settings.ledger_url)
    try:
        record = ledger.candidate(version)
    finally:
        ledger.close()
    if record is not None and record.metrics:
        metrics = {**metrics, **record.metrics}
    base_rate, source = cold_start_probability(model, metadata, metrics)
    trained_at = getattr(model, "trained_at", None)
    return ServedModel(
        version=version,
        model=model,
        family=str(getattr(model, "family", metadata.get("family", "unknown"))),
        feature_service=str(model.feature_service),
        feature_names=tuple(model.feature_names),
        metrics=metrics,
        trained_at=trained_at.isoformat() if trained_at is not None else metadata.get("trained_at"),
        cold_start_probability=base_rate,
        cold_start_source=source,
    )
