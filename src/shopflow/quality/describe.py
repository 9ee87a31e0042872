"""Turn GX validation results into :class:`CheckResult`s a person can read.

GX reports each expectation type in its own shape (an ``observed_value`` for aggregates,
unexpected counts and samples for row-wise checks, nested exception info when a column
is missing). This module flattens them into "observed ... ; expected ..." text.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

from shopflow.quality.result import CheckResult

_MAX_EXAMPLES = 5


def _fmt(value: Any) -> str:
    """A value as short text: numbers rounded, timestamps as ISO, None as 'null'."""
    if value is None:
        return "null"
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(value, datetime | date):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    if hasattr(value, "isoformat"):  # pandas Timestamp
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.6g}"
    if isinstance(value, list | tuple | set):
        items = sorted(value, key=str) if isinstance(value, set) else list(value)
        shown = ", ".join(_fmt(v) for v in items[:8])
        return f"[{shown}{', …' if len(items) > 8 else ''}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
    return repr(value) if isinstance(value, str) else str(value)


def _exception_message(info: Any) -> str | None:
    """The first exception message in GX's (possibly nested) exception info."""
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "exception")
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message") or "exception")
    return None


def _percent(value: Any) -> str:
    if value is None:
        return "null"
    return f"{float(value):.2%}"


def _range(kwargs: dict[str, Any]) -> str:
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    lo_op = ">" if kwargs.get("strict_min") else ">="
    hi_op = "<" if kwargs.get("strict_max") else "<="
    if low is not None and high is not None:
        return f"between {_fmt(low)} and {_fmt(high)}"
    if low is not None:
        return f"{lo_op} {_fmt(low)}"
    if high is not None:
        return f"{hi_op} {_fmt(high)}"
    return "any value"


def _share(mostly: Any) -> str:
    allowed = 1.0 - float(mostly if mostly is not None else 1.0)
    return "none" if allowed <= 0 else f"at most {allowed:.1%} of rows"


def _expected(kind: str, kwargs: dict[str, Any]) -> str:
    """What the expectation asks for, in words."""
    mostly = kwargs.get("mostly")
    column = kwargs.get("column")
    if kind == "expect_column_to_exist":
        return f"column {column!r} present"
    if kind == "expect_table_columns_to_match_set":
        return f"exactly {_fmt(kwargs.get('column_set'))}"
    if kind == "expect_table_row_count_to_be_between":
        return f"row count {_range(kwargs)}"
    if kind == "expect_column_values_to_be_in_type_list":
        return f"type in {_fmt(kwargs.get('type_list'))}"
    if kind == "expect_column_values_to_not_be_null":
        return f"nulls: {_share(mostly)}"
    if kind == "expect_column_values_to_be_in_set":
        return f"values in {_fmt(kwargs.get('value_set'))}"
    if kind == "expect_column_values_to_not_be_in_set":
        return f"no value in {_fmt(kwargs.get('value_set'))}"
    if kind == "expect_column_values_to_match_regex":
        return f"values match {kwargs.get('regex')!r}"
    if kind == "expect_column_values_to_not_match_regex":
        return f"no value matches {kwargs.get('regex')!r}"
    if kind == "expect_column_value_lengths_to_be_between":
        return f"lengths {_range(kwargs)}"
    if kind in ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"):
        return "no duplicates"
    if kind == "expect_column_pair_values_a_to_be_greater_than_b":
        op = ">=" if kwargs.get("or_equal") else ">"
        return f"{kwargs.get('column_A')} {op} {kwargs.get('column_B')} on every row"
    if kind == "expect_column_values_to_be_between":
        bound = f"values {_range(kwargs)}"
        return bound if mostly in (None, 1, 1.0) else f"{bound} (violations: {_share(mostly)})"
    if kind.startswith("expect_column_") and kind.endswith("_to_be_between"):
        stat = kind.removeprefix("expect_column_").removesuffix("_to_be_between")
        return f"{stat} {_range(kwargs)}"
    shown = {k: v for k, v in kwargs.items() if k not in ("batch_id", "column")}
    return _fmt(shown)


def _observed(kind: str, result: dict[str, Any], kwargs: dict[str, Any]) -> str:
    """What the data showed, in words."""
    if kind == "expect_column_to_exist":
        return "present" if result.get("success", True) else "missing"
    if kind == "expect_table_columns_to_match_set":
        mismatched = (result.get("details") or {}).get("mismatched") or {}
        parts = []
        if mismatched.get("unexpected"):
            parts.append(f"unexpected {_fmt(mismatched['unexpected'])}")
        if mismatched.get("missing"):
            parts.append(f"missing {_fmt(mismatched['missing'])}")
        return "; ".join(parts) if parts else _fmt(result.get("observed_value"))
    if "observed_value" in result:
        return _fmt(result["observed_value"])
    count = result.get("unexpected_count")
    if count is None:
        return "not evaluated"
    percent = result.get("unexpected_percent") or 0.0
    total = result.get("element_count")
    of = f" of {total}" if total is not None else ""
    if kind == "expect_column_values_to_not_be_null":
        return f"{count}{of} rows null ({_pct(percent)})"
    noun = {
        "expect_column_values_to_be_unique": "duplicated rows",
        "expect_compound_columns_to_be_unique": "rows with duplicated keys",
        "expect_column_values_to_be_in_type_list": "values of another type",
    }.get(kind, "rows violating")
    return f"{count}{of} {noun} ({_pct(percent)})"


def _examples(result: dict[str, Any]) -> list[str]:
    """A few distinct offending values (GX samples 20 rows; their counts mean little)."""
    counts = result.get("partial_unexpected_counts") or []
    values = [c.get("value") for c in counts] or list(result.get("partial_unexpected_list") or [])
    distinct: list[str] = []
    for value in values:
        text = _fmt(value)
        if text not in distinct:
            distinct.append(text)
    return distinct[:_MAX_EXAMPLES]


def _pct(percent: float) -> str:
    """Percent with enough digits that a few rows in a million do not read as 0.0%."""
    if 0 < percent < 0.1:
        return f"{percent:.3f}%"
    return f"{percent:.1f}%"


def to_check_result(table: str, validation_result: Any) -> CheckResult:
    """One GX ``ExpectationValidationResult`` as a :class:`CheckResult`."""
    config = validation_result.expectation_config
    kind = config.type
    kwargs = {k: v for k, v in dict(config.kwargs).items() if k != "batch_id"}
    meta = dict(config.meta or {})
    result = dict(validation_result.result or {})
    exception = _exception_message(validation_result.exception_info)
    success = bool(validation_result.success)
    if kind == "expect_column_to_exist":
        result["success"] = success
    if meta.get("unit") == "share" and kind.startswith("expect_column_max"):
        observed = _percent(result.get("observed_value"))
        expected = _range({k: _percent(v) if isinstance(v, int | float) else v
                           for k, v in kwargs.items()}).replace("'", "")
    elif kind == "expect_column_max_to_be_between" and table.endswith(".batch_metrics"):
        observed = _fmt(result.get("observed_value"))
        expected = _range(kwargs)
    else:
        observed = _observed(kind, result, kwargs)
        expected = _expected(kind, kwargs)
    if exception:
        observed = f"could not evaluate: {exception}"
    examples = _examples(result)
    if examples and not success and not exception:
        observed += f", e.g. {', '.join(examples[:3])}"
    column = kwargs.get("column") or (
        ",".join(kwargs["column_list"]) if "column_list" in kwargs else None
    )
    return CheckResult(
        table=table,
        check=str(meta.get("check") or kind),
        expectation=kind,
        column=column,
        severity=str(meta.get("severity") or "error"),
        success=success,
        observed=observed,
        expected=expected,
        unexpected_count=result.get("unexpected_count"),
        unexpected_percent=(
            round(float(result["unexpected_percent"]), 4)
            if result.get("unexpected_percent") is not None
            else None
        ),
        examples=examples,
        exception=exception,
        key=str(meta["key"]) if meta.get("key") else None,
    )
