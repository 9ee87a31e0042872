"""Calibration maps: turn a family's ranking scores into honest probabilities.

Boosting, early stopping and an MLP's training all leave their own over- or
under-confidence (and the class reweighting the families used to do inflated every
probability: test ECE 0.056-0.102 vs the logistic baseline's 0.015 in a 200k-event run).
The service returns ``purchase_probability`` to shops and gate 2 guards on log loss, so
every candidate gets a monotone map, fitted on the *validation* cutoffs after early
stopping (rows the fit never trained on, and the latest before the test rows, so the map
also absorbs a drift of the base rate):

* ``platt`` — logistic regression on the score's log-odds, ``sigmoid(a * logit(p) + b)``.
  Two parameters, so it needs few rows; a shift of the log-odds (what reweighting or a
  drifted base rate causes) plus a slope for over-/under-confidence. The usual choice.
* ``isotonic`` — pool-adjacent-violators, interpolated between block centres so the map
  stays strictly increasing (no ties, so ROC AUC barely moves). Flexible, but it needs
  many rows; only tried with at least :data:`ISOTONIC_MIN_ROWS` rows and
  :data:`ISOTONIC_MIN_POSITIVES` positives, and only kept when it beats Platt on
  out-of-fold log loss.

Calibrators are plain numpy objects (no sklearn estimator inside), so a pickled model
loads with any library version. :class:`CalibratedPredictor` wraps a family's predictor,
so ``PropensityModel.predict_proba`` *and* ``model.predictor.predict`` (the serving fast
path) both return calibrated values.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

logger = logging.getLogger(__name__)

CALIBRATION_METHODS = ("auto", "platt", "isotonic", "none")
ISOTONIC_MIN_ROWS = 5000
ISOTONIC_MIN_POSITIVES = 500
CV_FOLDS = 3
_EPS = 1e-6


class Calibrator(Protocol):
    """A monotone map from raw P(buy) to calibrated P(buy)."""

    @property
    def method(self) -> str:
        """``none``, ``platt`` or ``isotonic``."""
        ...

    def transform(self, p: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for raw probabilities ``p``."""
        ...

    def describe(self) -> dict[str, Any]:
        """Plain facts for metadata and the report."""
        ...


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0 - _EPS)
    return np.asarray(np.log(p) - np.log1p(-p), dtype=np.float64)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic


@dataclass(frozen=True)
class IdentityCalibrator:
    """No map (validation too small or one class): the raw scores pass through."""

    method: str = "none"

    def transform(self, p: np.ndarray) -> np.ndarray:
        return np.asarray(p, dtype=np.float64)

    def describe(self) -> dict[str, Any]:
        return {"method": self.method}


@dataclass(frozen=True)
class PlattCalibrator:
    """``sigmoid(slope * logit(p) + intercept)`` (slope > 0, so ranking is kept)."""

    slope: float
    intercept: float
    method: str = "platt"

    def transform(self, p: np.ndarray) -> np.ndarray:
        return _sigmoid(self.slope * _logit(p) + self.intercept)

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, "slope": round(self.slope, 6),
                "intercept": round(self.intercept, 6)}


@dataclass(frozen=True)
class IsotonicCalibrator:
    """Piecewise-linear, strictly increasing map through the PAV block centres."""

    x: np.ndarray
    y: np.ndarray
    method: str = "isotonic"

    def transform(self, p: np.ndarray) -> np.ndarray:
        return np.asarray(np.interp(np.asarray(p, dtype=np.float64), self.x, self.y),
                          dtype=np.float64)

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, "knots": int(len(self.x)),
                "range": [float(self.y[0]), float(self.y[-1])]}


def fit_platt(p: np.ndarray, y: np.ndarray, *, iterations: int = 50) -> PlattCalibrator:
    """Maximum-likelihood Platt scaling by Newton's method (deterministic, no solver state).

    Uses Platt's smoothed targets (``(n+ + 1) / (n+ + 2)``), which keep the fit finite on
    separable data. A non-positive slope (a score that does not rank on validation) falls
    back to slope 1 with a fitted shift, so the map never reverses the model's ranking.
    """
    z = _logit(p)
    y = np.asarray(y, dtype=np.float64)
    positives = float(y.sum())
    negatives = float(len(y) - positives)
    target = np.where(y > 0, (positives + 1.0) / (positives + 2.0), 1.0 / (negatives + 2.0))
    prior = (positives + 1.0) / (len(y) + 2.0)
    a, b = 1.0, float(np.log(prior / (1 - prior)) - np.mean(z))
    for _ in range(iterations):
        q = _sigmoid(a * z + b)
        w = np.maximum(q * (1 - q), 1e-12)
        r = q - target
        g = np.array([np.dot(r, z), r.sum()])
        h = np.array([[np.dot(w, z * z), np.dot(w, z)], [np.dot(w, z), w.sum()]])
        h += 1e-9 * np.eye(2)
        step = np.linalg.solve(h, g)
        a, b = a - float(step[0]), b - float(step[1])
        if np.abs(step).max() < 1e-10:
            break
    if not (np.isfinite(a) and np.isfinite(b)) or a <= 0:
        return PlattCalibrator(slope=1.0, intercept=_fit_shift(z, target))
    return PlattCalibrator(slope=a, intercept=b)


def _fit_shift(z: np.ndarray, target: np.ndarray, *, iterations: int = 50) -> float:
    """The log-odds shift ``b`` of ``sigmoid(z + b)`` that fits the targets."""
    b = 0.0
    for _ in range(iterations):
        q = _sigmoid(z + b)
        step = float((q - target).sum() / max(float((q * (1 - q)).sum()), 1e-12))
        b -= step
        if abs(step) < 1e-10:
            break
    return b if np.isfinite(b) else 0.0


def fit_isotonic(p: np.ndarray, y: np.ndarray) -> IsotonicCalibrator:
    """Pool-adjacent-violators on the sorted scores, knots at each block's mean score."""
    from sklearn.isotonic import isotonic_regression

    order = np.argsort(p, kind="mergesort")
    xs = np.asarray(p, dtype=np.float64)[order]
    fitted = isotonic_regression(np.asarray(y, dtype=np.float64)[order], increasing=True)
    # PAV blocks are runs of equal fitted values; each becomes one knot at its mean score
    starts = np.flatnonzero(np.r_[True, np.diff(fitted) != 0])
    counts = np.diff(np.r_[starts, len(fitted)])
    centres = np.add.reduceat(xs, starts) / counts
    values = fitted[starts]
    # a probability of exactly 0 or 1 would make log loss infinite on one surprise
    floor = 0.5 / (len(fitted) + 1.0)
    values = np.clip(values, floor, 1.0 - floor)
    if len(centres) == 1:  # one block: a constant map (the base rate)
        centres = np.array([0.0, 1.0])
        values = np.repeat(values, 2)
    centres, keep = np.unique(centres, return_index=True)
    return IsotonicCalibrator(x=centres, y=values[keep])


def _log_loss(y: np.ndarray, q: np.ndarray) -> float:
    q = np.clip(q, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log1p(-q)))


def _cross_validated(p: np.ndarray, y: np.ndarray, fit: Any) -> float:
    """Out-of-fold log loss of a calibrator (interleaved folds: deterministic)."""
    folds = np.arange(len(y)) % CV_FOLDS
    losses = []
    for k in range(CV_FOLDS):
        held = folds == k
        calibrator = fit(p[~held], y[~held])
        losses.append(_log_loss(y[held], calibrator.transform(p[held])) * held.sum())
    return float(sum(losses) / len(y))


def fit_calibrator(p: np.ndarray, y: np.ndarray, *, method: str = "auto") -> Calibrator:
    """The calibration map for raw validation scores ``p`` and labels ``y``.

    Args:
        p: the uncalibrated P(buy) of the validation rows.
        y: their 0/1 labels.
        method: ``platt``, ``isotonic``, ``none`` or ``auto`` (Platt, unless the validation
            part is large enough for isotonic and isotonic wins on out-of-fold log loss).

    Raises:
        ValueError: unknown method.
    """
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"unknown calibration method {method!r}; expected one of "
                         f"{list(CALIBRATION_METHODS)}")
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    finite = np.isfinite(p)
    p, y = p[finite], y[finite]
    if method == "none" or len(np.unique(y)) < 2:
        return IdentityCalibrator()
    if method == "platt":
        return fit_platt(p, y)
    if method == "isotonic":
        return fit_isotonic(p, y)
    positives = float(y.sum())
    enough = len(y) >= ISOTONIC_MIN_ROWS and min(positives, len(y) - positives) >= ISOTONIC_MIN_POSITIVES
    if not enough:
        return fit_platt(p, y)
    platt_loss = _cross_validated(p, y, fit_platt)
    isotonic_loss = _cross_validated(p, y, fit_isotonic)
    logger.debug("calibration out-of-fold log loss: platt %.5f, isotonic %.5f",
                 platt_loss, isotonic_loss)
    return fit_isotonic(p, y) if isotonic_loss < platt_loss else fit_platt(p, y)


class CalibratedPredictor:
    """A family's predictor followed by a calibration map.

    ``predict`` returns calibrated probabilities; ``raw_predict`` the family's own scores.
    ``contributions`` (SHAP, where the family has them) stay those of the raw model's
    log-odds: the map is monotone, so the features that raise the raw score raise the
    calibrated one too.
    """

    def __init__(self, base: Any, calibrator: Calibrator) -> None:
        self.base = base
        self.calibrator = calibrator

    def raw_predict(self, matrix: np.ndarray) -> np.ndarray:
        return np.asarray(self.base.predict(matrix), dtype=np.float64)

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        return self.calibrator.transform(self.raw_predict(matrix))

    def contributions(self, matrix: np.ndarray) -> np.ndarray | None:
        explain = getattr(self.base, "contributions", None)
        return None if explain is None else explain(matrix)
