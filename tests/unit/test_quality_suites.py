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


#: Blocking checks with no threshold to move: fixed rules of the event contract.
_THRESHOLD_ARGS = ("mostly", "min_value", "max_value")


def test_every_blocking_check_names_the_key_that_moves_its_threshold() -> None:
    quality = load_settings().quality
    batch = suites.load("batch").build_batch_suite(
        layer="raw", quality=quality,
        metrics={"duplicate_rate": 0.0, "exact_duplicate_rate": 0.0, "missing_user_rate": 0.0,
                 "other_quarantine_rate": 0.0, "psi_price": 0.1},
    )
    for suite in [*_all_suites(quality), batch]:
        for expectation in suite.expectations:
            meta = expectation.meta or {}
            if meta["severity"] != "error":
                continue
            key = meta.get("key")
            args = {name: getattr(expectation, name, None) for name in _THRESHOLD_ARGS}
            # a threshold from the settings (not a contract constant such as 0, 1, the -1 of
            # a sine's range or "all rows") must name its quality.* key
            configurable = (args["mostly"] not in (None, 1.0)
                            or args["min_value"] not in (None, 0, 1, -1)
                            or args["max_value"] not in (None, 1, 64))  # 64: MAX_ID_LENGTH
            if configurable:
                assert key and key.startswith("quality."), (suite.name, meta["check"])
            if key:
                section, _, field = key.partition(".")
                assert section in ("quality", "source"), key
                if section == "quality":
                    assert field in type(quality).model_fields, key


def test_the_message_of_a_blocking_check_names_its_key() -> None:
    failed = CheckResult(table="raw.raw_events", check="event_time not before 1990-01-01",
                         expectation="expect_column_values_to_be_between", column="event_time",
                         severity="error", success=False, observed="150 of 1500 rows",
                         expected=">= 1990-01-01", key="quality.min_event_time")
    assert failed.describe().endswith("(threshold: quality.min_event_time)")
    fixed = CheckResult(table="raw.raw_events", check="price not negative",
                        expectation="expect_column_values_to_be_between", column="price",
                        severity="error", success=False, observed="1 row", expected=">= 0")
    assert "fixed rule of the event contract" in fixed.describe()


def test_history_floor_is_a_date_and_the_age_limit_is_opt_in() -> None:
    raw = suites.load("raw")
    default = {e.meta["check"]: e for e in raw.build_raw_suite(
        quality=load_settings().quality, now=NOW).expectations}
    floor = default["event_time not before 1990-01-01"]
    assert floor.min_value == datetime(1990, 1, 1) and floor.meta["key"] == "quality.min_event_time"
    aged = {e.meta["check"]: e for e in raw.build_raw_suite(
        quality=load_settings(quality={"max_event_age": "3650d"}).quality, now=NOW).expectations}
    assert aged["event_time not older than 3650d (~10 years)"].min_value == NOW - timedelta(3650)
