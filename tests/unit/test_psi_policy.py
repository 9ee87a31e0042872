"""One PSI: gate 1 and monitoring share the function and its missing-value policy."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import pytest

from shopflow.quality import drift
from shopflow.quality.drift import EPSILON, Histogram, histogram, psi, sample_psi


def test_monitoring_and_gate_one_call_the_same_psi(monkeypatch: pytest.MonkeyPatch) -> None:
    from shopflow.monitoring import drift as monitoring_drift
    from shopflow.quality import metrics

    assert monitoring_drift.psi is sample_psi
    assert metrics.psi is psi and metrics.histogram is histogram

    calls: list[str] = []
    real = drift.psi

    def spy(reference: Histogram, values: np.ndarray) -> float | None:
        calls.append("psi")
        return real(reference, values)

    monkeypatch.setattr(drift, "psi", spy)
    monkeypatch.setattr(metrics, "psi", spy)
    frame = pd.DataFrame({"a": np.arange(100.0)})
    monitoring_drift.frame_psi(frame, frame, columns=["a"], threshold=0.25)
    base = metrics.new_baseline("raw", {"raw_events": frame.assign(price=frame["a"])},
                                batch_id="b", bins=10)
    metrics.batch_metrics("raw", {"raw_events": frame.assign(price=frame["a"])}, baseline=base)
    assert calls == ["psi", "psi"]


def test_the_same_samples_give_the_same_number_through_either_caller() -> None:
    from shopflow.monitoring.drift import frame_psi
    from shopflow.quality.metrics import batch_metrics, new_baseline

    rng = np.random.default_rng(5)
    old = pd.DataFrame({"price": rng.lognormal(2, 0.5, 3000)})
    new = pd.DataFrame({"price": rng.lognormal(2.2, 0.5, 3000)})
    new.loc[new.sample(frac=0.1, random_state=1).index, "price"] = np.nan
    gate = batch_metrics("raw", {"raw_events": new},
                         baseline=new_baseline("raw", {"raw_events": old}, batch_id=None, bins=10))
    monitoring = frame_psi(old, new, columns=["price"], threshold=0.25, bins=10)
    assert gate["psi_price"] == pytest.approx(monitoring.psi["price"], rel=1e-12)


def test_missing_values_are_a_bin_of_their_own() -> None:
    reference = np.linspace(0, 1, 1000)
    hist = histogram(reference, bins=4)
    assert hist is not None and hist.missing == 0.0
    assert sum(hist.shares) + hist.missing == pytest.approx(1.0)

    current = reference.copy()
    current[::10] = np.nan  # 10% go missing, the rest keep their distribution
    value = psi(hist, current)
    # the missing bin alone: (0.1 - eps) * ln(0.1 / eps); the value bins shrink by 10%
    missing_term = (0.1 - EPSILON) * math.log(0.1 / EPSILON)
    assert value is not None and value > missing_term > 0.25

    with_missing = histogram(current, bins=4)
    assert with_missing is not None and with_missing.missing == pytest.approx(0.1)
    assert psi(with_missing, current) == pytest.approx(0.0, abs=1e-12)
    # None and infinities are missing too
    assert sample_psi([1.0, 2.0, None, math.inf], [1.0, 2.0, math.nan, -math.inf]) == pytest.approx(0.0)


def test_a_jump_in_missing_share_is_drift_even_when_present_values_match() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(size=4000)
    half_missing = values.copy()
    half_missing[: len(values) // 2] = np.nan
    assert sample_psi(values, values) == pytest.approx(0.0, abs=1e-12)
    assert sample_psi(values, half_missing) > 0.25
    assert sample_psi(half_missing, values) > 0.25


def test_bins_are_reference_quantiles_closed_on_the_right() -> None:
    hist = histogram(np.array([1.0, 1.0, 1.0, 2.0, 2.0, 3.0]), bins=3)
    assert hist is not None
    assert hist.edges == [1.0, 2.0]
    # a value equal to an edge stays with the values below it
    assert hist.shares == pytest.approx([0.5, 2 / 6, 1 / 6])
    # a constant reference has two bins: up to its value, and above it
    assert sample_psi(np.ones(10), np.full(10, 1.0)) == pytest.approx(0.0, abs=1e-12)
    assert sample_psi(np.ones(10), np.full(10, 2.0)) > 0.25


def test_empty_bins_get_epsilon_so_psi_stays_finite() -> None:
    hist = Histogram(edges=[0.5], shares=[1.0, 0.0], missing=0.0)
    value = psi(hist, [0.9, 0.9])
    assert value is not None and math.isfinite(value)
    expected = (EPSILON - 1.0) * math.log(EPSILON / 1.0) + (1.0 - EPSILON) * math.log(1.0 / EPSILON)
    assert value == pytest.approx(expected)


def test_a_baseline_stored_before_the_policy_is_skipped_not_misread(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from shopflow.quality.metrics import Baseline

    stored = {
        "layer": "raw",
        "histograms": {
            "price": {"edges": [1.0], "shares": [0.5, 0.5]},  # before the missing share
            "events_per_user_day": {"edges": [1.0], "shares": [0.5, 0.5], "missing": 0.0},
        },
    }
    with caplog.at_level(logging.WARNING, logger="shopflow.quality.metrics"):
        baseline = Baseline.from_dict(stored)
    assert list(baseline.histograms) == ["events_per_user_day"]
    assert "price" in caplog.text and "predates the shared PSI" in caplog.text
