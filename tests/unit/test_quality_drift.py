"""PSI and the baseline file: the numbers behind the drift checks."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from shopflow.quality.drift import Histogram, histogram, psi
from shopflow.quality.metrics import (
    Baseline,
    batch_metrics,
    duplicate_rate,
    load_baseline,
    new_baseline,
    save_baseline,
)
from shopflow.quality.result import QualityError


def test_psi_is_small_for_the_same_distribution_and_large_for_a_tenfold_shift() -> None:
    rng = np.random.default_rng(0)
    reference = histogram(rng.lognormal(2, 0.7, 5000), bins=10)
    assert reference is not None
    same = psi(reference, rng.lognormal(2, 0.7, 5000))
    shifted = psi(reference, rng.lognormal(2, 0.7, 5000) * 10)
    assert same is not None and shifted is not None
    assert same < 0.05
    assert shifted > 1.0


def test_psi_grows_with_the_size_of_the_shift() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(0, 1, 4000)
    reference = histogram(base, bins=10)
    assert reference is not None
    values = [psi(reference, rng.normal(shift, 1, 4000)) for shift in (0.0, 0.3, 1.0)]
    assert values == sorted(values)


def test_histogram_handles_discrete_values_and_empty_input() -> None:
    counts = np.array([1, 1, 1, 1, 2, 2, 3, 1, 1, 1], dtype=float)
    hist = histogram(counts, bins=10)
    assert hist is not None
    assert len(hist.shares) == len(hist.edges) + 1
    assert sum(hist.shares) == pytest.approx(1.0)
    assert psi(hist, counts) == pytest.approx(0.0)
    # all-missing values are a distribution too (one missing bin); no values are none
    assert histogram(np.array([np.nan, np.inf]), bins=10) == Histogram([], [0.0], missing=1.0)
    assert histogram(np.array([]), bins=10) is None
    assert psi(hist, np.array([])) is None
    assert Histogram.from_dict(hist.to_dict()) == hist


def test_duplicate_rate_counts_extra_copies_only_and_ignores_lineage() -> None:
    frame = pd.DataFrame(
        {
            "user_id": ["a", "a", "b", "c"],
            "item_id": ["x", "x", "y", "z"],
            "source_row": [1, 2, 3, 4],  # lineage differs, the event does not
        }
    )
    assert duplicate_rate(frame) == pytest.approx(0.25)
    assert duplicate_rate(frame.iloc[:0]) is None


def test_batch_metrics_compare_with_the_baseline_only_when_there_is_one() -> None:
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in rng.integers(0, 50, 500)],
            "event_time": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 30, 500), "D"),
            "price": rng.lognormal(2, 0.5, 500),
        }
    )
    first = batch_metrics("raw", {"raw_events": frame}, baseline=None,
                          quarantine_counts={"rows_read": 1000, "missing_user_id": 250,
                                             "quarantined": 300})
    assert "psi_price" not in first
    assert first["missing_user_rate"] == pytest.approx(0.25)
    assert first["other_quarantine_rate"] == pytest.approx(0.05)

    baseline = new_baseline("raw", {"raw_events": frame}, batch_id="b1", bins=10)
    again = batch_metrics("raw", {"raw_events": frame}, baseline=baseline)
    assert again["psi_price"] == pytest.approx(0.0, abs=1e-9)
    assert again["psi_events_per_user_day"] == pytest.approx(0.0, abs=1e-9)


def test_baseline_round_trips_and_a_corrupt_file_is_a_clear_error(settings) -> None:
    baseline = Baseline(layer="marts", batch_id=None, rows={"purchase_labels": 10},
                        histograms={"events_lookback": Histogram([1.0, 2.0], [0.2, 0.3, 0.5])},
                        label_rate=0.2)
    path = save_baseline(settings, baseline)
    assert path.name == "baseline-marts.json"
    assert load_baseline(settings, "marts") == baseline
    assert load_baseline(settings, "raw") is None

    path.write_text(json.dumps({"rows": {}}))
    with pytest.raises(QualityError, match="baseline-marts.json is unreadable"):
        load_baseline(settings, "marts")
