"""Test ROC AUC per cutoff with a bootstrap interval; permutation importance without SHAP."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from shopflow.evaluation.explain import global_importance
from shopflow.evaluation.uncertainty import fast_roc_auc, roc_auc_interval
from shopflow.settings import load_settings
from shopflow.training.pipeline import train_family
from shopflow.training.split import split_by_cutoff
from shopflow.training.synthetic import synthetic_training_frame

if TYPE_CHECKING:
    import pytest


def test_fast_roc_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = np.round(rng.uniform(size=500) + 0.3 * y, 1)  # many ties
    assert fast_roc_auc(y, p) == roc_auc_score(y, p)


def test_interval_covers_the_estimate_and_narrows_with_rows() -> None:
    rng = np.random.default_rng(1)

    def frame(n: int, cutoffs: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        y = rng.integers(0, 2, n)
        p = rng.normal(size=n) + 0.8 * y
        stamps = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(
            np.repeat(np.arange(cutoffs) * 30, n // cutoffs), unit="D")
        return pd.DataFrame({"event_timestamp": stamps}), y, p

    small = roc_auc_interval(*frame(400, 1))
    large = roc_auc_interval(*frame(6000, 3))
    for result in (small, large):
        low, high = result["ci95"]
        assert low < result["mean"] < high
    assert len(large["by_cutoff"]) == 3
    assert large["mean"] == np.mean([c["roc_auc"] for c in large["by_cutoff"]])
    assert large["ci95"][1] - large["ci95"][0] < small["ci95"][1] - small["ci95"][0]
    assert roc_auc_interval(*frame(400, 1)) != small  # other rows, other numbers
    again = frame(400, 1)
    assert roc_auc_interval(*again) == roc_auc_interval(*again)  # seeded


def test_interval_is_the_same_whatever_the_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resamples are scored in chunks to bound memory; the chunk never changes a value."""
    from shopflow.evaluation import uncertainty

    rng = np.random.default_rng(2)
    n = 3000
    frame = pd.DataFrame({"event_timestamp": pd.Timestamp("2026-01-01", tz="UTC")
                          + pd.to_timedelta(rng.integers(0, 3, n) * 7, unit="D")})
    y = rng.integers(0, 2, n)
    p = np.round(rng.uniform(size=n) + 0.3 * y, 2)  # ties too
    whole = roc_auc_interval(frame, y, p)  # default chunk: every resample at once here
    for cells in (1, 5_000, 250_000):
        monkeypatch.setattr(uncertainty, "CHUNK_CELLS", cells)
        assert roc_auc_interval(frame, y, p) == whole


def test_families_without_shap_get_permutation_importance() -> None:
    frame = synthetic_training_frame(rows=1500, cutoffs=4, seed=2)
    result = train_family(load_settings(training={"search_trials": 1}), "baseline", frame,
                          "run", dry_run=True)
    assert result.model is not None
    test = frame.iloc[split_by_cutoff(frame).test]
    ranked = global_importance(result.model, test)
    assert ranked and {r["method"] for r in ranked} == {"permutation_roc_auc_drop"}
    assert ranked[0]["importance"] > 0 and ranked[0]["feature"] in result.model.feature_names
    assert ranked == global_importance(result.model, test)  # seeded
    assert global_importance(result.model, test.drop(columns=["label"])) == []
