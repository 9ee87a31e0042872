"""A small random search per family with a fixed trial budget, scored on validation.

Trial 1 is always the family's defaults (a good model even with a budget of one trial);
later trials sample from a seeded generator, so the same seed proposes the same trials.
The budget is a number of trials, not seconds: ``training.search_trials``, or when unset
:func:`trial_budget` of the training rows (more trials on small data, where each is
cheap), capped by the family's ``SEARCH_TRIALS`` (BG/NBD has nothing to search). So the
same data and seed give the same trials and the same model whatever the machine's load
(a time box made two runs on the same data differ). ``search_seconds`` is only a safety
net, checked between trials (a trial is never cut short); when it cuts the search, the
result says so (``budget["time_box_hit"]``) and the report shows it. The best trial by
the gate's primary metric on validation is kept.

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


#: Trial budget by training rows: ``clamp(TRIAL_ROWS // rows, MIN_TRIALS, MAX_TRIALS)``.
TRIAL_ROWS = 200_000
MIN_TRIALS = 4
MAX_TRIALS = 12


def trial_budget(rows: int) -> int:
    """The fixed number of search trials for ``rows`` training rows (4 to 12)."""
    return int(min(MAX_TRIALS, max(MIN_TRIALS, TRIAL_ROWS // max(rows, 1))))


@dataclass
class SearchResult:
    """The best fit, its validation metrics, and every trial for the report."""

    fitted: Fitted
    validation_metrics: dict[str, float]
    trials: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    budget: dict[str, Any] = field(default_factory=dict)


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
    """Run ``trials`` fits of ``family`` (``seconds`` only as a safety net); the best wins."""
    module = family_module(family)
    planned = min(trials, int(getattr(module, "SEARCH_TRIALS", trials)))
    rng = np.random.default_rng([ctx.seed, zlib.crc32(family.encode())])
    started = time.perf_counter()
    best: tuple[float, Fitted, dict[str, float], int] | None = None
    history: list[dict[str, Any]] = []
    time_box_hit = False
    for trial in range(planned):
        if trial and time.perf_counter() - started > seconds:
            time_box_hit = True
            logger.warning("%s: the %.0fs safety time box cut the search after %d of %d "
                           "trial(s); results now depend on machine speed", family, seconds,
                           trial, planned)
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
            best = (score, fitted, metrics, trial)
    assert best is not None
    budget = {"trials_planned": planned, "trials_run": len(history), "best_trial": best[3],
              "time_box_seconds": seconds, "time_box_hit": time_box_hit,
              "primary_metric": primary_metric, "seed": ctx.seed}
    return SearchResult(fitted=best[1], validation_metrics=best[2], trials=history,
                        seconds=time.perf_counter() - started, budget=budget)


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
