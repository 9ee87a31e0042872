"""Helpers shared by the suites: severities, and column groups of the event contract."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from great_expectations.expectations.metadata_types import FailureSeverity

from shopflow.settings import CANONICAL_COLUMNS

if TYPE_CHECKING:
    from datetime import timedelta

    from great_expectations.expectations import Expectation

Severity = Literal["error", "warning"]

#: Columns of the canonical event contract (docs/DESIGN.md §2) as ``raw.raw_events`` holds them,
#: and its event types: defined once, in the settings module.
EVENT_COLUMNS = CANONICAL_COLUMNS
#: Lineage columns ingestion adds to every row of ``raw.raw_events``.
LINEAGE_COLUMNS = ("batch_id", "source_file", "source_row", "ingested_at")

# pandas dtype names as GX reports them (DuckDB and psycopg2 frames both land here), then
# the SQL type names GX's SQL datasource reflects from the warehouse table (duckdb-engine:
# TIMESTAMP, String, FLOAT, Integer; PostgreSQL: TIMESTAMP WITHOUT TIME ZONE, TEXT,
# DOUBLE PRECISION, INTEGER): the same types, named by the other side.
TEXT_TYPES = ["object", "str", "string", "StringDtype", "String", "VARCHAR", "TEXT"]
TIME_TYPES = ["datetime64", "datetime64[ns]", "datetime64[us]", "datetime64[ms]", "datetime64[s]",
              "TIMESTAMP", "TIMESTAMP WITHOUT TIME ZONE", "DateTime"]
FLOAT_TYPES = ["float64", "float32", "Float64", "Float32", "float",
               "FLOAT", "Float", "DOUBLE", "DOUBLE PRECISION", "DOUBLE_PRECISION", "REAL"]
INT_TYPES = ["int64", "int32", "int16", "Int64", "Int32", "Int16", "int",
             "Integer", "INTEGER", "BigInteger", "BIGINT", "SmallInteger", "SMALLINT"]

#: Strings that a null becomes when an id column is cast carelessly (``str(None)``...).
NULL_LIKE_IDS = ["", "nan", "NaN", "None", "none", "null", "NULL", "<NA>", "NaT"]
#: An id is one token: no leading/trailing whitespace, not empty.
WELL_FORMED_ID = r"^\S(?:.*\S)?$"

_GX_SEVERITY: dict[str, FailureSeverity] = {
    "error": FailureSeverity.CRITICAL,
    "warning": FailureSeverity.WARNING,
}


def human(duration: timedelta) -> str:
    """``1d``, ``12h``, ``90m``: durations as written in run configs."""
    seconds = int(duration.total_seconds())
    if seconds >= 2 * 365 * 86400:
        return f"{seconds // 86400}d (~{seconds / (365.25 * 86400):.0f} years)"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def check(
    expectation_cls: type[Expectation],
    *,
    severity: Severity,
    name: str,
    why: str,
    unit: Literal["share"] | None = None,
    key: str | None = None,
    **kwargs: Any,
) -> Expectation:
    """One expectation with the metadata the gate and its reports rely on.

    Args:
        expectation_cls: a GX expectation class, e.g. ``ExpectColumnValuesToNotBeNull``.
        severity: ``error`` blocks the gate; ``warning`` is reported and passes.
        name: the short, stable name users see in tables and messages.
        why: what a failure means for the pipeline (shown in Data Docs as notes).
        unit: ``share`` when the checked value is a fraction (reports show it in percent).
        key: the configuration key that changes the check's threshold (``quality.*``) or
            what it checks (``source.*``); every failure message names it. None: a fixed
            rule of the event contract, said so in the message.
        **kwargs: the expectation's own arguments.
    """
    meta: dict[str, Any] = {"severity": severity, "check": name}
    if unit:
        meta["unit"] = unit
    if key:
        meta["key"] = key
    return expectation_cls(
        meta=meta,
        notes=why,
        severity=_GX_SEVERITY[severity],
        **kwargs,
    )


def volume_checks(
    *,
    previous_rows: int | None,
    tolerance: float,
) -> list[Expectation]:
    """Row count vs the last good batch: a drop blocks, a spike is reported.

    A drop beyond the tolerance usually means a partial export or a broken join; a spike
    is more often real growth, and blocking it would need a manual baseline reset.
    """
    import great_expectations.expectations as gxe

    if not previous_rows:
        return []
    low = int(previous_rows * (1 - tolerance))
    high = int(previous_rows * (1 + tolerance)) + 1
    return [
        check(
            gxe.ExpectTableRowCountToBeBetween,
            severity="error",
            name=f"row count not down >{tolerance:.0%} vs last good batch",
            why=f"The last good batch had {previous_rows} rows.",
            key="quality.volume_tolerance",
            min_value=low,
        ),
        check(
            gxe.ExpectTableRowCountToBeBetween,
            severity="warning",
            name=f"row count not up >{tolerance:.0%} vs last good batch",
            why=f"The last good batch had {previous_rows} rows.",
            key="quality.volume_tolerance",
            max_value=high,
        ),
    ]
