"""What every family's ``fit`` receives and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shopflow.training.model import Predictor


@dataclass(frozen=True)
class FitData:
    """Train and validation matrices (float64, NaN = missing) with their labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    feature_names: list[str]

    @property
    def positive_weight(self) -> float:
        """sqrt(negatives / positives): counters class imbalance without wrecking calibration.

        Full reweighting (neg/pos) inflates every probability by the imbalance ratio and
        hurts log loss and Brier; the square root keeps most of the ranking benefit.
        """
        positives = float(self.y_train.sum())
        negatives = float(len(self.y_train) - positives)
        return float(np.sqrt(negatives / positives)) if positives else 1.0


@dataclass(frozen=True)
class FitContext:
    """Run-wide facts a family needs: seed, threads, device."""

    seed: int
    threads: int = 2
    device: str = "cpu"


@dataclass
class Fitted:
    """A fitted predictor, the features it reads and what the fit learned about itself."""

    predictor: Predictor
    feature_names: list[str]
    params: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)
