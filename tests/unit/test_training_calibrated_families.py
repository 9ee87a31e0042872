"""Behaviour: every family returns calibrated probabilities on held-out rows.

On a frame with known signal, each family's mean P(buy) on the out-of-time test rows must
match the observed buy rate, and its Brier score must not be worse than the logistic
baseline's by more than a small margin (before calibration, the reweighted trees and MLP
over-predicted by 4-5 points and lost on Brier). Each family is fitted once per module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

from shopflow.evaluation.metrics import classification_metrics
from shopflow.training.split import split_by_cutoff
from shopflow.training.synthetic import synthetic_training_frame

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd

    from shopflow.training.model import PropensityModel

FAMILIES = ["baseline", "xgboost", "lightgbm", "torch"]
MEAN_TOLERANCE = 0.03  # about 2 standard errors of a rate on ~1,200 test rows
BRIER_MARGIN = 0.005


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return synthetic_training_frame(rows=6000, cutoffs=5, seed=7)


@pytest.fixture(scope="module")
def test_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.iloc[split_by_cutoff(frame).test]


@pytest.fixture
def model(frame: pd.DataFrame, quick_model: Callable[[pd.DataFrame, str], PropensityModel]
          ) -> Callable[[str], PropensityModel]:
    return lambda family: quick_model(frame, family)


@pytest.mark.parametrize("family", FAMILIES)
def test_mean_prediction_matches_the_observed_rate(model, test_rows: pd.DataFrame,
                                                   family: str) -> None:
    fitted = model(family)
    p = fitted.predict_proba(test_rows)
    observed = float(test_rows["label"].mean())
    assert abs(p.mean() - observed) < MEAN_TOLERANCE, (
        f"{family}: mean P(buy) {p.mean():.4f} vs observed rate {observed:.4f}")
    assert fitted.calibration is not None and fitted.calibration["method"] in (
        "platt", "isotonic")


@pytest.mark.parametrize("family", ["xgboost", "lightgbm", "torch"])
def test_brier_is_not_worse_than_the_baseline(model, test_rows: pd.DataFrame,
                                              family: str) -> None:
    y = test_rows["label"].to_numpy()
    baseline = classification_metrics(y, model("baseline").predict_proba(test_rows))
    challenger = classification_metrics(y, model(family).predict_proba(test_rows))
    assert challenger["brier"] <= baseline["brier"] + BRIER_MARGIN, (
        f"{family} Brier {challenger['brier']:.4f} vs baseline {baseline['brier']:.4f}")
    assert challenger["roc_auc"] > 0.7  # still learns the signal


@pytest.mark.parametrize("family", FAMILIES)
def test_calibration_keeps_the_ranking_and_the_fast_path(model, test_rows: pd.DataFrame,
                                                         family: str) -> None:
    fitted = model(family)
    matrix = fitted.matrix(test_rows)
    calibrated = fitted.predict_proba(test_rows)
    # the serving fast path calls the predictor directly: it must be calibrated too
    np.testing.assert_array_equal(np.clip(fitted.predictor.predict(matrix), 0, 1), calibrated)
    raw = fitted.predictor.raw_predict(matrix)
    y = test_rows["label"].to_numpy()
    assert classification_metrics(y, calibrated)["roc_auc"] == pytest.approx(
        classification_metrics(y, raw)["roc_auc"], abs=0.003)
