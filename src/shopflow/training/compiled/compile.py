"""Compile a trained model into numpy, and prove it predicts what the library predicts.

:func:`compile_model` turns a :class:`~shopflow.training.model.PropensityModel`'s predictor
into a :class:`CompiledPredictor`: the family's model as numpy arrays
(:mod:`~shopflow.training.compiled.trees`, :mod:`~shopflow.training.compiled.dense`)
followed by the *same* calibration map object. :func:`compile_checked` is what
registration runs: compile, compare with the library on the model's own test rows plus
:func:`probe_rows` (missing values, zeros, extremes), keep the compiled predictor only
when no probability differs by more than :data:`TOLERANCE`, and time both so the service
knows up to which batch size the compiled one is the faster.

BG/NBD is closed-form numpy already (no library call to replace): it is not compiled.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from shopflow.training.compiled.trees import NotCompilable

if TYPE_CHECKING:
    from shopflow.training.model import PropensityModel

logger = logging.getLogger(__name__)

#: The largest |compiled - library| probability accepted, at registration and at swap.
TOLERANCE = 1e-6
#: ``/metadata``'s name of the serving path that uses a compiled predictor.
COMPILED = "compiled-numpy"
LIBRARY = "library"
#: Batch sizes timed at registration to find where the library's fixed cost stops
#: dominating (the compiled trees do more arithmetic per row than the libraries' C++).
TIMED_SIZES = (1, 4, 16, 64, 256)


class RawPredictor(Protocol):
    """A compiled family model: uncalibrated P(label = 1) per row."""

    def predict(self, matrix: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class CompiledPredictor:
    """A family's model compiled to numpy, followed by the library model's calibration map.

    Attributes:
        raw: the compiled family model.
        calibrator: the calibration map of the library predictor (``None``: raw scores).
        method: how it was compiled, e.g. ``numpy-trees(xgboost)``.
        max_rows: the largest batch it serves; larger ones go to the library predictor,
            which was faster there when registration timed both (``None``: any size).
    """

    raw: RawPredictor
    calibrator: Any
    method: str
    max_rows: int | None = None

    def raw_predict(self, matrix: np.ndarray) -> np.ndarray:
        return np.asarray(self.raw.predict(matrix), dtype=np.float64)

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        raw = self.raw_predict(matrix)
        return raw if self.calibrator is None else np.asarray(
            self.calibrator.transform(raw), dtype=np.float64)

    def serves(self, rows: int) -> bool:
        """Whether a batch of ``rows`` rows should use this predictor (else the library)."""
        return self.max_rows is None or rows <= self.max_rows


@dataclass(frozen=True)
class Compilation:
    """What registration stores: the checked predictor (or none) and the facts about it."""

    predictor: CompiledPredictor | None
    facts: dict[str, Any] = field(default_factory=dict)


def compile_model(model: PropensityModel) -> CompiledPredictor:
    """The model's predictor as numpy arrays plus its calibration map (unchecked).

    Raises:
        NotCompilable: the family or the fitted model uses something not reproduced.
    """
    from shopflow.training.compiled.dense import NumpyLogistic, NumpyMLP
    from shopflow.training.compiled.trees import from_lightgbm, from_xgboost
    from shopflow.training.families.baseline import LogisticPredictor
    from shopflow.training.families.lgbm import LightGBMPredictor
    from shopflow.training.families.mlp import TorchPredictor
    from shopflow.training.families.xgb import XGBoostPredictor

    predictor: Any = model.predictor
    calibrator = getattr(predictor, "calibrator", None)
    base = predictor.base if calibrator is not None else predictor
    raw: RawPredictor
    if isinstance(base, XGBoostPredictor):
        raw, method = from_xgboost(base.booster, base.rounds), "numpy-trees(xgboost)"
    elif isinstance(base, LightGBMPredictor):
        raw, method = from_lightgbm(base.booster, base.rounds), "numpy-trees(lightgbm)"
    elif isinstance(base, TorchPredictor):
        raw, method = NumpyMLP.from_torch(base), "numpy-mlp(torch)"
    elif isinstance(base, LogisticPredictor):
        raw, method = NumpyLogistic.from_pipeline(base.pipeline, base.columns), \
            "numpy-logistic(sklearn)"
    else:
        raise NotCompilable(f"the {model.family} family's {type(base).__name__} is not "
                            "compiled (BG/NBD is closed-form numpy already)")
    return CompiledPredictor(raw=raw, calibrator=calibrator, method=method)


def probe_rows(rows: np.ndarray, n_features: int, *, seed: int = 0) -> np.ndarray:
    """``rows`` plus rows that exercise every branch the compiled code copies.

    Copies of (up to 64 of) ``rows`` with a third of the values missing, with zeros and
    tiny values (LightGBM's zero-as-missing), with values far out of range (x100, +-1e6)
    and negated; rows of +-1e39 (float32 overflow), an all-missing row, and synthetic
    gamma rows when ``rows`` is empty.
    """
    rng = np.random.default_rng(seed)
    base = np.asarray(rows, dtype=np.float64).reshape(-1, n_features)
    sample = base[:64] if len(base) else rng.gamma(1.5, 5.0, size=(16, n_features))
    probes = [base]
    if not len(base):
        probes.append(sample)
    holes = sample.copy()
    holes[rng.random(holes.shape) < 1 / 3] = np.nan
    zeros = sample.copy()
    zeros[rng.random(zeros.shape) < 1 / 3] = 0.0
    zeros[rng.random(zeros.shape) < 0.1] = 1e-36
    extreme = sample.copy()
    mask = rng.random(extreme.shape)
    extreme[mask < 0.2] *= 100.0
    extreme[(mask >= 0.2) & (mask < 0.3)] = 1e6
    extreme[(mask >= 0.3) & (mask < 0.4)] = -1e6
    # beyond float32 (XGBoost casts its input): whole rows, so the MLP's float32 sums
    # saturate instead of cancelling huge terms, where torch itself is not batch-invariant
    overflow = np.full((2, n_features), 1e39)
    overflow[1] *= -1
    probes += [holes, zeros, extreme, -sample, overflow, np.full((1, n_features), np.nan)]
    return np.vstack(probes)


def max_difference(compiled: CompiledPredictor, library: Any, rows: np.ndarray) -> float:
    """The largest |compiled - library| probability over ``rows`` (inf when not finite)."""
    if not len(rows):
        return 0.0
    expected = np.asarray(library.predict(rows), dtype=np.float64).reshape(-1)
    got = compiled.predict(rows).reshape(-1)
    if got.shape != expected.shape:
        return float("inf")
    same_gaps = np.isnan(got) == np.isnan(expected)
    if not same_gaps.all():
        return float("inf")
    difference = np.abs(got - expected)
    return float(np.nanmax(difference)) if np.isfinite(difference).any() else 0.0


def _seconds(predict: Any, rows: np.ndarray, *, repeat: int = 5) -> float:
    """Best-of-``repeat`` seconds of one call (best-of: a shared host only adds noise)."""
    predict(rows)  # warm caches and lazy state (torch builds its module on first use)
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        predict(rows)
        best = min(best, time.perf_counter() - started)
    return best


def faster_up_to(compiled: CompiledPredictor, library: Any, rows: np.ndarray
                 ) -> tuple[int | None, dict[str, list[float]]]:
    """The largest of :data:`TIMED_SIZES` up to which the compiled predictor was faster.

    Returns:
        ``(max_rows, timings)``: ``None`` when it was faster at every size, 0 when not
        even at one row; timings are microseconds per call at each size.
    """
    timings: dict[str, list[float]] = {"rows": [], "compiled_us": [], "library_us": []}
    faster_until: int | None = None
    previous = 0
    for size in TIMED_SIZES:
        batch = rows[np.arange(size) % len(rows)]
        fast, slow = _seconds(compiled.predict, batch), _seconds(library.predict, batch)
        timings["rows"].append(size)
        timings["compiled_us"].append(round(fast * 1e6, 1))
        timings["library_us"].append(round(slow * 1e6, 1))
        if fast > slow:
            faster_until = previous
            break
        previous = size
    return faster_until, timings


def compile_checked(model: PropensityModel, rows: np.ndarray | None, *,
                    time_it: bool = True) -> Compilation:
    """Compile ``model`` and keep the result only if it predicts what the library does.

    Args:
        model: the trained model.
        rows: its own test rows (a float64 matrix in ``model.feature_names`` order); the
            probe rows of :func:`probe_rows` are added.
        time_it: time both predictors to set :attr:`CompiledPredictor.max_rows`.

    Returns:
        The compiled predictor, or ``None`` with the reason in ``facts`` (the model is
        then served by its library predictor).
    """
    n_features = len(model.feature_names)
    checked = probe_rows(np.empty((0, n_features)) if rows is None else rows, n_features)
    try:
        compiled = compile_model(model)
        difference = max_difference(compiled, model.predictor, checked)
    except NotCompilable as exc:
        logger.info("%s model not compiled: %s", model.family, exc)
        return Compilation(None, {"inference": LIBRARY, "reason": f"not compiled: {exc}"})
    except Exception as exc:  # a faster path is never a reason to fail a registration
        logger.warning("%s model not compiled: %s: %s", model.family, type(exc).__name__, exc)
        return Compilation(None, {"inference": LIBRARY,
                                  "reason": f"compiling failed: {type(exc).__name__}: {exc}"})
    facts: dict[str, Any] = {"method": compiled.method, "max_abs_diff": difference,
                             "rows_checked": int(len(checked)), "tolerance": TOLERANCE,
                             "test_rows": 0 if rows is None else int(len(rows))}
    if not difference <= TOLERANCE:
        reason = (f"compiled predictions differ from the library's by {difference:.3g} "
                  f"> {TOLERANCE:g} on {len(checked)} rows")
        logger.warning("%s model not compiled: %s", model.family, reason)
        return Compilation(None, {**facts, "inference": LIBRARY, "reason": reason})
    if time_it:
        max_rows, timings = faster_up_to(compiled, model.predictor, checked)
        facts = {**facts, "max_rows": max_rows if max_rows is not None else "any",
                 "timings": timings}
        if max_rows == 0:
            reason = "the library predictor was faster even on one row"
            logger.info("%s model not compiled: %s", model.family, reason)
            return Compilation(None, {**facts, "inference": LIBRARY, "reason": reason})
        compiled = CompiledPredictor(raw=compiled.raw, calibrator=compiled.calibrator,
                                     method=compiled.method, max_rows=max_rows)
    return Compilation(compiled, {**facts, "inference": COMPILED})
