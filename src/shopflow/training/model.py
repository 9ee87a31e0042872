"""The one model object every part of Shopflow passes around.

A :class:`PropensityModel` wraps a family-specific predictor (logistic baseline, XGBoost,
LightGBM or a PyTorch MLP) behind one interface: a frame of features in, P(buy) out. It
aligns columns by name, so the caller's column order and extra columns never matter, and
missing columns or values become NaN, which every predictor handles. It pickles with
plain ``pickle`` (the torch predictor stores a CPU state dict plus its architecture), so
the registry and the serving process need nothing but ``shopflow`` to load it.

Trained candidates hold a :class:`~shopflow.training.calibration.CalibratedPredictor`:
the family's predictor followed by a calibration map fitted on the validation cutoffs, so
both :meth:`PropensityModel.predict_proba` and ``model.predictor.predict`` (the serving
fast path) return calibrated probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from shopflow.features.matrix import feature_matrix

if TYPE_CHECKING:
    import pandas as pd


class Predictor(Protocol):
    """What a family's fitted model must offer (on a float64 matrix, NaN for missing)."""

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """P(label = 1) per row."""
        ...


class MissingFeaturesError(ValueError):
    """The frame lacks every feature the model needs — almost certainly the wrong input."""


@dataclass
class PropensityModel:
    """A trained purchase-propensity model, ready to score a frame of features.

    Attributes:
        family: ``baseline``, ``xgboost``, ``lightgbm`` or ``torch``.
        feature_names: the columns the predictor reads, in its order.
        feature_service: the Feast feature service that produces those columns.
        params: the hyperparameters it was trained with (for the ledger and report).
        predictor: the fitted family-specific model.
        trained_at: when training finished (UTC).
    """

    family: str
    feature_names: list[str]
    feature_service: str
    params: dict[str, Any]
    predictor: Predictor
    trained_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def matrix(self, frame: pd.DataFrame, rows: np.ndarray | None = None) -> np.ndarray:
        """The frame's features as a float64 matrix in the model's column order.

        With ``rows`` (positions), only those rows, without copying the frame's other
        columns first (see :func:`~shopflow.features.matrix.feature_matrix`).

        Raises:
            MissingFeaturesError: none of the model's features is in the frame.
        """
        present = [name for name in self.feature_names if name in frame.columns]
        if self.feature_names and not present and len(frame):
            raise MissingFeaturesError(
                f"the frame has none of the {len(self.feature_names)} features of this "
                f"{self.family} model (feature service {self.feature_service!r}), e.g. "
                f"{self.feature_names[:3]}; got columns {list(frame.columns)[:8]}"
            )
        return feature_matrix(frame, self.feature_names, rows)

    def predict_proba(self, frame: pd.DataFrame, rows: np.ndarray | None = None) -> np.ndarray:
        """P(buy within the horizon) for each row of ``frame`` (or only its ``rows``,
        positions, as ``predict_proba(frame.iloc[rows])`` scores them), in row order."""
        if (len(frame) if rows is None else len(rows)) == 0:
            return np.zeros(0, dtype=np.float64)
        probabilities = np.asarray(self.predictor.predict(self.matrix(frame, rows)),
                                   dtype=np.float64)
        return np.clip(probabilities.reshape(-1), 0.0, 1.0)

    def contributions(self, frame: pd.DataFrame) -> np.ndarray | None:
        """Per-feature SHAP contributions (log-odds, last column = bias) where supported.

        For a calibrated model they explain the family's raw log-odds; the calibration map
        is monotone, so they rank the reasons for the calibrated score the same way.
        """
        explain = getattr(self.predictor, "contributions", None)
        if explain is None:
            return None
        values = explain(self.matrix(frame))
        return None if values is None else np.asarray(values, dtype=np.float64)

    @property
    def calibration(self) -> dict[str, Any] | None:
        """The calibration map's facts (method, parameters), or None for a raw predictor."""
        calibrator = getattr(self.predictor, "calibrator", None)
        return None if calibrator is None else calibrator.describe()

    def describe(self) -> dict[str, Any]:
        """Plain facts for metadata and reports."""
        return {
            "family": self.family,
            "feature_service": self.feature_service,
            "feature_names": list(self.feature_names),
            "params": dict(self.params),
            "calibration": self.calibration,
            "trained_at": self.trained_at.isoformat(),
        }

