"""The suites in expectations/: every check carries a severity, thresholds follow settings,
and the result types format and travel (pickle) as the pipeline needs.
"""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta

import pytest

from shopflow.quality import suites
from shopflow.quality.result import CheckResult, GateFailed, GateResult, format_table
from shopflow.settings import load_settings

NOW = datetime(2026, 11, 25, 8, 0, 0)


def _all_suites(quality):
    raw = suites.load("raw").build_raw_suite(quality=quality, now=NOW, previous_rows=1000)
    staging = suites.load("staging").build_staging_suite(quality=quality, now=NOW, previous_rows=5)
    marts = suites.load("marts").build_marts_suite(
        quality=quality, previous_rows={"user_features": 10}, previous_label_rate=0.2
    )
    batch = suites.load("batch").build_batch_suite(
        layer="raw", metrics={"duplicate_rate": 0.0, "psi_price": 0.1, "psi_unknown": None},
        quality=quality,
    )
    return [raw, staging, *marts.values(), batch]


def test_every_expectation_has_a_severity_and_a_name() -> None:
    quality = load_settings().quality
    for suite in _all_suites(quality):
        assert suite.expectations, suite.name
        for expectation in suite.expectations:
            meta = expectation.meta or {}
            assert meta.get("severity") in ("error", "warning"), (suite.name, expectation)
            assert meta.get("check"), (suite.name, expectation)
            # GX's own severity mirrors ours, so Data Docs show the same thing.
            gx_severity = str(expectation.severity.value)
            assert gx_severity == ("critical" if meta["severity"] == "error" else "warning")


def test_thresholds_come_from_settings() -> None:
    quality = load_settings(quality={"max_future_tolerance": "2h", "volume_tolerance": 0.1}).quality
    raw = suites.load("raw").build_raw_suite(quality=quality, now=NOW, previous_rows=1000)
    by_name = {e.meta["check"]: e for e in raw.expectations}
    future = by_name["event_time not in the future (> 2h ahead)"]
    assert future.max_value == NOW + timedelta(hours=2)
    volume = by_name["row count not down >10% vs last good batch"]
    assert volume.min_value == 900


def test_volume_checks_need_a_previous_batch_and_file_frames_allow_guest_rows() -> None:
    quality = load_settings().quality
    raw = suites.load("raw")
    names = {e.meta["check"] for e in raw.build_raw_suite(quality=quality, now=NOW).expectations}
    assert not any(name.startswith("row count") for name in names)
    from_file = raw.build_raw_suite(quality=quality, now=NOW, from_file=True)
    user_check = next(e for e in from_file.expectations
                      if e.meta["check"].startswith("user_id not null"))
    assert user_check.mostly == pytest.approx(1 - quality.max_null_user_rate)
    assert not any(e.meta["check"] == "column batch_id present" for e in from_file.expectations)


def test_batch_suite_skips_metrics_that_could_not_be_computed() -> None:
    quality = load_settings().quality
    suite = suites.load("batch").build_batch_suite(
        layer="staging", metrics={"psi_price": None, "duplicate_rate": 0.01}, quality=quality
    )
    columns = {e.column for e in suite.expectations}
    assert columns == {"duplicate_rate"}


def _result(success: bool) -> GateResult:
    failed = CheckResult(
        table="raw.raw_events", check="price not negative",
        expectation="expect_column_values_to_be_between", column="price", severity="error",
        success=success, observed="12 of 100 rows violating (12.0%)", expected="values >= 0",
    )
    warned = CheckResult(
        table="raw.raw_events", check="price positive (zero prices)",
        expectation="expect_column_values_to_be_between", column="price", severity="warning",
        success=False, observed="3 of 100 rows violating (3.0%)", expected="values > 0",
    )
    return GateResult(layer="raw", batch_id="b7", success=success, checks=[failed, warned])


def test_gate_failed_message_starts_with_layer_and_count_then_lists_failures() -> None:
    error = GateFailed(_result(success=False))
    lines = str(error).splitlines()
    assert lines[0] == (
        "quality gate 'raw' (batch b7) FAILED: 1 error check failed (1 warning, 2 checks)"
    )
    assert "price not negative: observed 12 of 100 rows violating (12.0%); expected values >= 0" \
        in lines[1]
    clone = pickle.loads(pickle.dumps(error))
    assert str(clone) == str(error)
    assert clone.result.batch_id == "b7"


def test_table_and_dict_forms() -> None:
    result = _result(success=True)
    table = format_table(result)
    assert table.splitlines()[0].split() == ["table", "check", "severity", "observed",
                                              "expected", "result"]
    assert "pass" in table and "warn" in table
    assert "price not negative" not in format_table(result, only_failed=True)
    data = result.to_dict()
    assert data["failed_errors"] == 0 and data["failed_warnings"] == 1
    assert data["headline"].startswith("quality gate 'raw' (batch b7) passed")
