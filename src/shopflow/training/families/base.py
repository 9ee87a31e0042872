"""What every family's ``fit`` receives and returns.

Families fit without *class* weights. Reweighting positives (``scale_pos_weight`` / ``pos_weight`` =
sqrt(neg/pos)) inflated every probability — test Brier 0.093-0.103 against the logistic
baseline's 0.085 in a 200k-event run — and did not even help ranking: on that run's frame
unweighted XGBoost/LightGBM reached test ROC AUC 0.829/0.828 vs 0.822/0.822 weighted, in
fewer boosting rounds. The search then fits a calibration map on the validation rows
(:mod:`shopflow.training.calibration`) for whatever miscalibration remains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    #: per training row; None = all 1. Set when ``training.max_rows`` down-sampled the
    #: negatives (each kept one weighs 1/keep_rate, :mod:`shopflow.training.sampling`):
    #: every family's fit must use it, or its probabilities inflate by ~1/keep_rate.
    #: Validation rows are never sampled, so early stopping and calibration need none.
    w_train: np.ndarray | None = None


@dataclass(frozen=True)
class FitContext:
    """Run-wide facts a family needs: seed, threads, device, calibration method.

    One thread by default: OpenMP threads spin at every barrier, and on a shared 2-core
    host with other work running, two threads per fit measured 2-5x *slower* than one
    (LightGBM, 4 trials on 21k rows: 72 s vs 13 s at load 5). Families train as separate
    tasks, which is where the parallelism belongs. Results do not depend on it.
    """

    seed: int
    threads: int = 1
    device: str = "cpu"
    calibration: str = "auto"
    horizon_days: float | None = None  # the task horizon (BG/NBD scores P(buy) within it)


@dataclass
class Fitted:
    """A fitted predictor, the features it reads and what the fit learned about itself."""

    predictor: Predictor
    feature_names: list[str]
    params: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)
