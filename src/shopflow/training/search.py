"""A small, time-boxed random search per family, scored on the validation cutoffs.

Trial 1 is always the family's defaults (a good model even with a budget of one trial);
later trials sample from a seeded generator, so the same seed proposes the same trials.
The search stops after ``search_trials`` trials or once ``search_seconds`` have passed
(checked between trials — a trial is never cut short), and keeps the best trial by the
gate's primary metric on validation.

Every trial's predictor is wrapped with a calibration map fitted on the validation rows
(:mod:`shopflow.training.calibration`), and the trial is scored on its *calibrated*
validation probabilities, so a search on log loss or Brier compares what the service
would return. (The map is monotone: ROC/PR AUC are those of the raw scores.)
"""

from __future__ import annotations

import logging
import time
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from shopflow.evaluation.metrics import classification_metrics, higher_is_better
from shopflow.training.calibration import CalibratedPredictor, fit_calibrator
from shopflow.training.families import family_module

if TYPE_CHECKING:
    from shopflow.training.families.base import FitContext, FitData, Fitted

logger = logging.getLogger(__name__)


@dataclass
class SearchResult:
    """The best fit, its validation metrics, and every trial for the report."""

    fitted: Fitted
    validation_metrics: dict[str, float]
    trials: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def _score(metrics: dict[str, float], metric: str) -> float:
    value = metrics.get(metric, float("nan"))
    if not np.isfinite(value):
        return -np.inf
    return value if higher_is_better(metric) else -value


def search(
    family: str,
    data: FitData,
    ctx: FitContext,
    *,
    trials: int,
    seconds: float,
    primary_metric: str = "roc_auc",
    threshold: float = 0.5,
) -> SearchResult:
    """Run up to ``trials`` fits of ``family`` within ``seconds``; return the best."""
    module = family_module(family)
    rng = np.random.default_rng([ctx.seed, zlib.crc32(family.encode())])
    started = time.perf_counter()
    best: tuple[float, Fitted, dict[str, float]] | None = None
    history: list[dict[str, Any]] = []
    for trial in range(trials):
        if trial and time.perf_counter() - started > seconds:
            logger.info("%s: search time box of %.0fs reached after %d trial(s)",
                        family, seconds, trial)
            break
        params = (module.default_params(data, ctx) if trial == 0
                  else module.sample_params(rng, data, ctx))
        trial_started = time.perf_counter()
        fitted, calibrated = calibrate(module.fit(data, params, ctx), data,
                                       method=ctx.calibration)
        metrics = classification_metrics(data.y_val, calibrated, threshold=threshold)
        score = _score(metrics, primary_metric)
        elapsed = time.perf_counter() - trial_started
        history.append({"trial": trial, "params": params, "info": fitted.info,
                        primary_metric: metrics.get(primary_metric), "seconds": round(elapsed, 3)})
        logger.info("%s trial %d: validation %s=%.4f in %.1fs (%s rows/s)", family, trial,
                    primary_metric, metrics.get(primary_metric, float("nan")), elapsed,
                    f"{len(data.y_train) / max(elapsed, 1e-9):,.0f}")
        if best is None or score > best[0]:
            best = (score, fitted, metrics)
    assert best is not None
    return SearchResult(fitted=best[1], validation_metrics=best[2], trials=history,
                        seconds=time.perf_counter() - started)


def calibrate(fitted: Fitted, data: FitData, *, method: str = "auto"
              ) -> tuple[Fitted, np.ndarray]:
    """``fitted`` with its predictor wrapped in a map fitted on the validation rows.

    The fit used the validation rows only for early stopping, never for its weights, so
    its scores there are honest; the map's facts go to ``info["calibration"]``. Also
    returns the calibrated validation probabilities (the validation rows are scored once).
    """
    raw = np.asarray(fitted.predictor.predict(_columns(data, fitted)), dtype=np.float64)
    calibrator = fit_calibrator(raw, data.y_val, method=method)
    fitted.predictor = CalibratedPredictor(fitted.predictor, calibrator)
    fitted.info = {**fitted.info, "calibration": calibrator.describe()}
    return fitted, calibrator.transform(raw)


def _columns(data: FitData, fitted: Fitted) -> np.ndarray:
    """The validation matrix restricted to the columns the fit uses, in its order."""
    if fitted.feature_names == data.feature_names:
        return data.x_val
    index = [data.feature_names.index(n) for n in fitted.feature_names]
    return data.x_val[:, index]
