"""Calibration maps: they fix known distortions, keep the ranking, and pickle."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from shopflow.evaluation.metrics import classification_metrics
from shopflow.training.calibration import (
    CalibratedPredictor,
    IdentityCalibrator,
    IsotonicCalibrator,
    PlattCalibrator,
    fit_calibrator,
    fit_isotonic,
    fit_platt,
)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def _sample(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """True probabilities (about 15% positives) and labels drawn from them."""
    rng = np.random.default_rng(seed)
    truth = _sigmoid(rng.normal(-2.0, 1.2, n))
    return truth, (rng.uniform(size=n) < truth).astype(int)


def test_platt_undoes_a_reweighting_shift_and_overconfidence() -> None:
    truth, y = _sample(20_000)
    # what scale_pos_weight=4 and overconfident boosting do to the log-odds
    raw = _sigmoid(1.6 * _logit(truth) + np.log(4.0))
    calibrator = fit_platt(raw, y)
    assert calibrator.slope == pytest.approx(1 / 1.6, rel=0.1)
    assert calibrator.intercept == pytest.approx(-np.log(4.0) / 1.6, abs=0.15)
    fixed = calibrator.transform(raw)
    before, after = classification_metrics(y, raw), classification_metrics(y, fixed)
    assert abs(fixed.mean() - y.mean()) < 0.01 < abs(raw.mean() - y.mean())
    assert after["brier"] < before["brier"] and after["log_loss"] < before["log_loss"]
    assert after["ece"] < 0.02 < before["ece"]
    assert after["roc_auc"] == pytest.approx(before["roc_auc"], abs=1e-12)  # ranking kept


def test_isotonic_is_strictly_increasing_inside_zero_one_and_keeps_the_ranking() -> None:
    truth, y = _sample(8000, seed=1)
    raw = np.sqrt(truth)  # a distortion no sigmoid map fits exactly
    calibrator = fit_isotonic(raw, y)
    assert isinstance(calibrator, IsotonicCalibrator)
    assert np.all(np.diff(calibrator.x) > 0) and np.all(np.diff(calibrator.y) > 0)
    assert 0 < calibrator.y[0] and calibrator.y[-1] < 1  # never a certain 0 or 1
    fixed = calibrator.transform(raw)
    assert abs(fixed.mean() - y.mean()) < 0.01
    before, after = classification_metrics(y, raw), classification_metrics(y, fixed)
    assert after["roc_auc"] == pytest.approx(before["roc_auc"], abs=0.005)
    assert after["brier"] < before["brier"]


def test_auto_uses_platt_on_few_rows_and_isotonic_only_where_it_wins() -> None:
    truth, y = _sample(1500, seed=2)
    assert isinstance(fit_calibrator(np.sqrt(truth), y, method="auto"), PlattCalibrator)

    truth, y = _sample(30_000, seed=3)
    # a step-shaped distortion: scores squeezed into a band with a jump in the middle
    raw = np.where(truth < 0.15, 0.40 + 0.1 * truth, 0.60 + 0.1 * truth)
    chosen = fit_calibrator(raw, y, method="auto")
    assert isinstance(chosen, IsotonicCalibrator)
    # and on a plain logit-linear distortion Platt is kept even with many rows
    assert isinstance(fit_calibrator(_sigmoid(_logit(truth) + 1.0), y, method="auto"),
                      PlattCalibrator)


def test_degenerate_inputs_never_reverse_or_break_the_ranking() -> None:
    rng = np.random.default_rng(4)
    scores = rng.uniform(0.01, 0.99, 2000)
    noise = (rng.uniform(size=2000) < 0.2).astype(int)
    reversed_labels = (scores < 0.2).astype(int)  # higher score, fewer positives
    for labels in (noise, reversed_labels):
        calibrator = fit_calibrator(scores, labels, method="platt")
        fixed = calibrator.transform(np.sort(scores))
        assert np.all(np.diff(fixed) >= 0)
        assert abs(calibrator.transform(scores).mean() - labels.mean()) < 0.02
    one_class = np.zeros(2000, dtype=int)
    assert isinstance(fit_calibrator(scores, one_class), IdentityCalibrator)
    np.testing.assert_array_equal(fit_calibrator(scores, one_class).transform(scores), scores)


def test_unknown_method_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown calibration method 'beta'"):
        fit_calibrator(np.array([0.1, 0.9]), np.array([0, 1]), method="beta")


class _Scores:
    """A stand-in family predictor: the matrix's first column is the score."""

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        return matrix[:, 0]


def test_calibrated_predictor_pickles_and_has_no_contributions_without_the_family() -> None:
    truth, y = _sample(3000, seed=5)
    raw = _sigmoid(_logit(truth) + 1.0)
    predictor = CalibratedPredictor(_Scores(), fit_calibrator(raw, y, method="platt"))
    matrix = raw.reshape(-1, 1)
    restored = pickle.loads(pickle.dumps(predictor))
    np.testing.assert_array_equal(restored.predict(matrix), predictor.predict(matrix))
    np.testing.assert_array_equal(predictor.raw_predict(matrix), raw)
    assert predictor.contributions(matrix) is None
    assert restored.calibrator.describe()["method"] == "platt"
