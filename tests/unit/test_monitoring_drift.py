"""PSI: zero for the same distribution, grows with the shift, treats missing values as drift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shopflow.monitoring.drift import frame_psi, psi


def test_same_distribution_has_near_zero_psi() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=20_000)
    current = rng.normal(size=20_000)
    assert psi(reference, current) < 0.01


def test_identical_samples_have_zero_psi() -> None:
    values = np.arange(1000, dtype=float)
    assert psi(values, values) == pytest.approx(0.0, abs=1e-12)


def test_psi_grows_with_the_shift() -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(size=10_000)
    small = psi(reference, rng.normal(0.2, 1, size=10_000))
    large = psi(reference, rng.normal(1.0, 1, size=10_000))
    assert 0.0 < small < large
    assert large > 0.25  # a one-sigma shift is "shifted" by the usual rule of thumb


def test_values_going_missing_count_as_drift() -> None:
    reference = np.linspace(0, 1, 5000)
    current = reference.copy()
    current[:2500] = np.nan
    assert psi(reference, current) > 0.25


def test_constant_feature_and_empty_inputs_do_not_crash() -> None:
    assert psi(np.ones(100), np.ones(50)) == pytest.approx(0.0, abs=1e-12)
    assert psi(np.ones(100), np.full(50, 2.0)) > 0.25
    assert psi([], [1.0, 2.0]) == 0.0


def test_bins_must_be_at_least_two() -> None:
    with pytest.raises(ValueError, match="at least 2 bins"):
        psi([1.0, 2.0], [1.0], bins=1)


def test_frame_psi_flags_only_the_shifted_column() -> None:
    rng = np.random.default_rng(2)
    reference = pd.DataFrame({"stable": rng.normal(size=5000), "moved": rng.normal(size=5000),
                              "flag": rng.integers(0, 2, size=5000).astype(bool)})
    current = pd.DataFrame({"stable": rng.normal(size=5000),
                            "moved": rng.normal(2.0, 1, size=5000),
                            "flag": rng.integers(0, 2, size=5000).astype(bool)})
    report = frame_psi(reference, current, columns=["stable", "moved", "flag", "absent"],
                       threshold=0.25)
    assert report.drifted == ["moved"]
    assert report.psi["stable"] < 0.05 and report.psi["flag"] < 0.05
    assert any("absent" in note for note in report.notes)
    as_dict = report.to_dict()
    assert as_dict["max_psi"] == pytest.approx(report.psi["moved"], rel=1e-4)
    assert as_dict["reference_rows"] == 5000
