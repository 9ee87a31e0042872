"""Weighted negative down-sampling above ``training.max_rows`` keeps probabilities calibrated.

The synthetic frame's label is thinned to a ~7% base rate (propensity data is
negative-heavy) and split at random into a training pool, validation rows and a holdout.
Each family is fitted on the pool down-sampled to a fifth of its rows.

* The served probabilities (the family's fit followed by the search's calibration map on
  the unsampled validation rows) must match the holdout's positive rate within four
  standard errors of the difference of two independent rates,
  ``4 * sqrt(p (1 - p) (1 / n_validation + 1 / n_holdout))`` (~0.015 here): the map's
  level is the validation rows' rate, so that is the noise it carries.
* The fit itself must honour the weights: its *raw* mean probability (before the map,
  which would hide a missing weight) must be far closer to the rate than the same fit
  without the weights, which lands near ``p / (p + (1 - p) keep_rate)`` ~ 0.27. (Weighted
  trees stay a little high, ~0.09: a leaf's rate is a ratio over few heavily weighted
  negatives, biased upward at small leaves; the map removes it.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

from shopflow.features.matrix import feature_matrix
from shopflow.settings import load_settings
from shopflow.training.families import family_module
from shopflow.training.families.base import FitContext, FitData, Fitted
from shopflow.training.pipeline import train_family
from shopflow.training.sampling import downsample_negatives
from shopflow.training.search import calibrate
from shopflow.training.split import feature_columns, split_by_cutoff
from shopflow.training.synthetic import synthetic_training_frame

if TYPE_CHECKING:
    import pandas as pd

POOL, VALIDATION = 0.5, 0.2
KEEP = 0.2  # max_rows as a share of the pool


def _rare_positive_frame(rows: int, seed: int) -> pd.DataFrame:
    """The synthetic frame with ~85% of its positives dropped at random (~7% base rate)."""
    frame = synthetic_training_frame(rows=rows, cutoffs=5, seed=seed)
    rng = np.random.default_rng(seed)
    drop = (frame["label"].to_numpy() == 1) & (rng.random(len(frame)) < 0.85)
    return frame[~drop].reset_index(drop=True)


@pytest.fixture(scope="module")
def parts() -> dict[str, np.ndarray | list[str]]:
    frame = _rare_positive_frame(60_000, seed=5)
    columns = feature_columns(frame)
    matrix = feature_matrix(frame, columns)
    labels = frame["label"].astype(int).to_numpy()
    order = np.random.default_rng(1).permutation(len(frame))
    a, b = int(POOL * len(order)), int((POOL + VALIDATION) * len(order))
    pool, val, hold = order[:a], order[a:b], order[b:]
    return {"x_pool": matrix[pool], "y_pool": labels[pool], "x_val": matrix[val],
            "y_val": labels[val], "x_hold": matrix[hold], "y_hold": labels[hold],
            "columns": columns}


def _fit_data(parts: dict, *, weighted: bool) -> tuple[FitData, np.ndarray]:
    y_pool = parts["y_pool"]
    sample = downsample_negatives(y_pool, int(KEEP * len(y_pool)), seed=42)
    assert sample.sampled
    data = FitData(x_train=parts["x_pool"][sample.rows], y_train=y_pool[sample.rows],
                   x_val=parts["x_val"], y_val=parts["y_val"],
                   feature_names=list(parts["columns"]),
                   w_train=sample.weights if weighted else None)
    assert sample.weights is not None
    return data, sample.weights


def _tolerance(rate: float, n_a: int, n_b: int) -> float:
    """Four standard errors of the difference of two independent rates ``rate``."""
    return 4.0 * float(np.sqrt(rate * (1 - rate) * (1 / n_a + 1 / n_b)))


def _fit(family: str, data: FitData) -> Fitted:
    ctx = FitContext(seed=42, horizon_days=30.0)
    module = family_module(family)
    return module.fit(data, module.default_params(data, ctx), ctx)


def _mean(fitted: Fitted, parts: dict) -> float:
    columns = [list(parts["columns"]).index(n) for n in fitted.feature_names]
    return float(np.mean(fitted.predictor.predict(parts["x_hold"][:, columns])))


# ---- the sampler ------------------------------------------------------------------------
def test_sampling_keeps_every_positive_and_reweights_negatives_exactly() -> None:
    labels = (np.random.default_rng(0).random(10_000) < 0.1).astype(int)
    sample = downsample_negatives(labels, 3000, seed=7)
    kept = labels[sample.rows]
    assert sample.weights is not None
    assert len(sample.rows) == 3000
    assert kept.sum() == labels.sum()
    # the weights restore the full counts, so the weighted base rate is the full one
    assert sample.weights.sum() == pytest.approx(len(labels))
    assert np.average(kept, weights=sample.weights) == pytest.approx(labels.mean())
    assert np.all(sample.weights[kept == 1] == 1.0)
    facts = sample.facts
    assert facts["rows_before"] == 10_000 and facts["rows_after"] == 3000
    assert facts["positives_kept"] == labels.sum()
    assert facts["negative_keep_rate"] == pytest.approx(
        (3000 - labels.sum()) / (10_000 - labels.sum()), abs=1e-6)
    again = downsample_negatives(labels, 3000, seed=7)
    assert np.array_equal(again.rows, sample.rows)
    assert not np.array_equal(downsample_negatives(labels, 3000, seed=8).rows, sample.rows)


def test_no_sampling_at_or_below_the_bound_or_without_one() -> None:
    labels = np.array([0, 1] * 500)
    for bound in (None, 1000, 5000):
        sample = downsample_negatives(labels, bound, seed=1)
        assert sample.weights is None and not sample.sampled
        assert np.array_equal(sample.rows, np.arange(1000))
        assert sample.facts["rows_after"] == 1000


def test_positives_beyond_half_the_bound_keep_as_many_negatives_and_say_so() -> None:
    labels = np.array([1] * 800 + [0] * 4200)
    sample = downsample_negatives(labels, 1000, seed=1)
    assert sample.facts["negatives_kept"] == 800
    assert sample.facts["bound_met"] is False
    assert labels[sample.rows].sum() == 800


# ---- every family honours the weights ---------------------------------------------------
@pytest.mark.parametrize("family", ["baseline", "xgboost", "lightgbm", "torch", "bgnbd"])
def test_down_sampled_training_serves_calibrated_probabilities(parts: dict, family: str
                                                               ) -> None:
    data, _ = _fit_data(parts, weighted=True)
    fitted, _ = calibrate(_fit(family, data), data)
    rate = float(parts["y_hold"].mean())
    tolerance = _tolerance(rate, len(parts["y_val"]), len(parts["y_hold"]))
    mean = _mean(fitted, parts)
    assert abs(mean - rate) <= tolerance, (family, mean, rate, tolerance)


@pytest.mark.parametrize("family", ["baseline", "xgboost", "lightgbm", "torch"])
def test_every_fit_uses_the_weights(parts: dict, family: str) -> None:
    rate = float(parts["y_hold"].mean())
    weighted = _mean(_fit(family, _fit_data(parts, weighted=True)[0]), parts)
    unweighted = _mean(_fit(family, _fit_data(parts, weighted=False)[0]), parts)
    assert unweighted - rate > 0.1  # the sample alone inflates the rate (~0.27)
    assert abs(weighted - rate) < 0.25 * abs(unweighted - rate), (weighted, unweighted, rate)


def test_bgnbd_weighted_fit_matches_the_full_fit(parts: dict) -> None:
    """BG/NBD's raw scores are its model's, not the base rate: compare with the full fit."""
    full = FitData(x_train=parts["x_pool"], y_train=parts["y_pool"], x_val=parts["x_val"],
                   y_val=parts["y_val"], feature_names=list(parts["columns"]))
    reference = _mean(_fit("bgnbd", full), parts)
    weighted = _mean(_fit("bgnbd", _fit_data(parts, weighted=True)[0]), parts)
    unweighted = _mean(_fit("bgnbd", _fit_data(parts, weighted=False)[0]), parts)
    assert abs(weighted - reference) < 0.25 * abs(unweighted - reference), (
        weighted, unweighted, reference)


# ---- the pipeline: training rows only, same metrics within noise ------------------------
def _auc_se(auc: float, positives: int, negatives: int) -> float:
    """Hanley & McNeil (1982) standard error of a ROC AUC."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc)
           + (negatives - 1) * (q2 - auc * auc)) / (positives * negatives)
    return float(np.sqrt(var))


@pytest.mark.parametrize("family", ["baseline", "xgboost"])
def test_pipeline_samples_training_rows_only_and_metrics_stay_within_noise(family: str
                                                                           ) -> None:
    frame = _rare_positive_frame(30_000, seed=9)
    full = train_family(load_settings(training={"search_trials": 1, "max_rows": None}),
                        family, frame, "run-full", dry_run=True)
    train_rows = full.split["train"]["rows"]
    bound = train_rows // 4
    sampled = train_family(load_settings(training={"search_trials": 1, "max_rows": bound}),
                           family, frame, "run-sampled", dry_run=True)
    facts = sampled.info["sampling"]
    assert facts["sampled"] and facts["rows_before"] == train_rows
    assert facts["rows_after"] == bound
    assert facts["positives_kept"] == facts["positives"]
    assert full.info["sampling"]["sampled"] is False
    # the validation (and test) rows are the same rows: sampling never touches them
    assert sampled.split == full.split
    settings = load_settings()
    split = split_by_cutoff(frame, validation_cutoffs=settings.training.validation_cutoffs,
                            test_cutoffs=settings.training.test_cutoffs,
                            horizon=settings.task.horizon)
    val_labels = frame["label"].to_numpy()[split.validation]
    positives = int(val_labels.sum())
    negatives = len(val_labels) - positives
    a, b = full.validation_metrics["roc_auc"], sampled.validation_metrics["roc_auc"]
    se = _auc_se(a, positives, negatives)
    assert abs(a - b) <= 4 * np.sqrt(2) * se, (a, b, se)
