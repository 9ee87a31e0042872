"""Metrics, calibration and slices on rows with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shopflow.evaluation.metrics import (
    classification_metrics,
    expected_calibration_error,
    flat_slice_metric,
    higher_is_better,
    lift_top_decile,
    reliability,
    sliced_metrics,
)


def test_perfect_and_inverted_rankings() -> None:
    y = np.array([0, 0, 0, 1, 1] * 20)
    p = np.where(y == 1, 0.9, 0.1)
    good = classification_metrics(y, p)
    assert good["roc_auc"] == pytest.approx(1.0) and good["pr_auc"] == pytest.approx(1.0)
    assert good["precision"] == good["recall"] == good["f1"] == pytest.approx(1.0)
    assert good["lift_top_decile"] == pytest.approx(1 / y.mean())
    bad = classification_metrics(y, 1 - p)
    assert bad["roc_auc"] == pytest.approx(0.0)
    assert bad["log_loss"] > good["log_loss"] and bad["brier"] > good["brier"]


def test_calibrated_scores_have_small_ece_and_miscalibrated_large() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 20_000)
    y = (rng.uniform(0, 1, p.size) < p).astype(int)
    assert expected_calibration_error(reliability(y, p)) < 0.02
    assert expected_calibration_error(reliability(y, p**3)) > 0.1
    bins = reliability(y, p)
    assert len(bins) == 10 and sum(b["count"] for b in bins) == p.size


def test_one_class_rows_give_nan_auc_not_an_error() -> None:
    metrics = classification_metrics(np.zeros(10, dtype=int), np.linspace(0, 1, 10))
    assert np.isnan(metrics["roc_auc"]) and np.isnan(metrics["lift_top_decile"])
    assert np.isfinite(metrics["log_loss"])


def test_lift_counts_the_top_tenth() -> None:
    y = np.array([1] * 10 + [0] * 90)
    p = np.linspace(1, 0, 100)
    assert lift_top_decile(y, p) == pytest.approx(10.0)


def test_slices_split_new_and_returning_and_categorical_columns() -> None:
    frame = pd.DataFrame({
        "user_id": [str(i) for i in range(80)],
        "is_returning_buyer": [0.0, 1.0] * 40,
        "segment": ["a"] * 40 + ["b"] * 40,
    })
    y = np.array([0, 1, 1, 0] * 20)
    p = np.array([0.2, 0.8, 0.6, 0.4] * 20)
    slices = sliced_metrics(frame, y, p)
    assert set(slices) == {"is_returning_buyer", "segment"}
    assert set(slices["is_returning_buyer"]) == {"new", "returning"}
    assert slices["segment"]["a"]["rows"] == 40
    flat = flat_slice_metric(slices, "roc_auc")
    assert "slice_roc_auc:is_returning_buyer=new" in flat


def test_metric_directions() -> None:
    assert higher_is_better("roc_auc") and not higher_is_better("log_loss")
    assert not higher_is_better("ece")


def test_no_rows_means_undefined_metrics_not_an_error() -> None:
    metrics = classification_metrics(np.array([], dtype=int), np.array([]))
    assert metrics["rows"] == 0 and np.isnan(metrics["roc_auc"]) and np.isnan(metrics["f1"])


def test_counting_and_loss_metrics_match_sklearn() -> None:
    from sklearn.metrics import (
        brier_score_loss,
        f1_score,
        log_loss,
        precision_score,
        recall_score,
    )

    rng = np.random.default_rng(3)
    for n in (1, 3, 50, 2000):
        for _ in range(10):
            y = (rng.uniform(size=n) < rng.uniform()).astype(int)
            p = rng.uniform(size=n) ** rng.uniform(0.2, 3.0)
            ours = classification_metrics(y, p, threshold=0.4)
            clipped = np.clip(p, 1e-7, 1 - 1e-7)
            predicted = (clipped >= 0.4).astype(int)
            reference = {
                "log_loss": log_loss(y, clipped, labels=[0, 1]),
                "brier": brier_score_loss(y, clipped),
                "precision": precision_score(y, predicted, zero_division=0),
                "recall": recall_score(y, predicted, zero_division=0),
                "f1": f1_score(y, predicted, zero_division=0),
            }
            for name, value in reference.items():
                assert ours[name] == pytest.approx(value, abs=1e-12), (name, n)


def test_paired_bootstrap_is_seeded_bounded_and_centred_on_the_gain() -> None:
    from sklearn.metrics import roc_auc_score

    from shopflow.evaluation.metrics import paired_bootstrap, weighted_roc_auc

    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 2000)
    a = np.round(rng.random(2000) + 0.4 * y, 2)  # rounded: ties are counted half
    b = np.round(rng.random(2000) + 0.2 * y, 2)
    assert weighted_roc_auc(y, a, np.ones((1, 2000)))[0] == pytest.approx(roc_auc_score(y, a))
    index = rng.integers(0, 2000, 2000)
    counts = np.bincount(index, minlength=2000)[None].astype(float)
    assert weighted_roc_auc(y, a, counts)[0] == pytest.approx(roc_auc_score(y[index], a[index]))

    interval = paired_bootstrap(y, a, b, resamples=300, seed=7)
    assert interval.gain == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b))
    assert interval.lower < interval.gain < interval.upper and interval.lower > 0
    assert interval.resamples == 300 and interval.seed == 7 and interval.rows == 2000
    assert paired_bootstrap(y, a, b, resamples=300, seed=7) == interval
    capped = paired_bootstrap(y, a, b, resamples=100, seed=7, max_rows=500)
    assert capped.rows == 500
    loss = paired_bootstrap(y, np.clip(a / 1.4, 0, 1), np.clip(b / 1.2, 0, 1),
                            metric="log_loss", resamples=100)
    assert loss.metric == "log_loss" and loss.lower <= loss.gain <= loss.upper


def test_band_slices_cover_tenure_activity_and_spend() -> None:
    frame = pd.DataFrame({
        "user_id": [f"u{i}" for i in range(9)],
        "is_returning_buyer": [0, 1, 1, 0, 1, 0, 1, 0, 1],
        "tenure_days": [5, 40, 200, 10, 95, 29, 30, 89, 300],
        "active_days_lookback": [1, 3, 9, 0, 7, 2, 6, 1, 12],
        "monetary_lookback": [0.0, 10, 20, 30, 40, 50, 60, 0, 70],
    })
    y = np.array([0, 1, 1, 0, 1, 0, 1, 0, 1])
    slices = sliced_metrics(frame, y, np.linspace(0.1, 0.9, 9))
    assert set(slices["tenure_band"]) == {"<30d", "30-89d", "90d+"}
    assert set(slices["activity_band"]) == {"0-1 active days", "2-6 active days",
                                            "7+ active days"}
    assert set(slices["spend_band"]) == {"no spend", "low spend", "mid spend", "high spend"}
    assert slices["spend_band"]["no spend"]["rows"] == 2
    assert "ece" in slices["tenure_band"]["90d+"]
