"""The raw gate: does the batch just ingested honour the event contract (docs/DESIGN.md §2)?

The raw layer is where a broken export is cheapest to stop: nothing downstream has seen
it yet. Errors here are contract violations that would poison features or labels
(missing or retyped columns, null or malformed ids, unknown event types, impossible
timestamps, negative prices); warnings describe mess that the pipeline handles but a
human should know about (zero prices, many returns, ids that look like floats).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import great_expectations as gx
import great_expectations.expectations as gxe

from shopflow.contract import MAX_ID_LENGTH
from shopflow.settings import EVENT_TYPES

from ._common import (
    EVENT_COLUMNS,
    FLOAT_TYPES,
    INT_TYPES,
    LINEAGE_COLUMNS,
    NULL_LIKE_IDS,
    TEXT_TYPES,
    TIME_TYPES,
    WELL_FORMED_ID,
    check,
    human,
    volume_checks,
)

if TYPE_CHECKING:
    from datetime import datetime

    from shopflow.settings import QualitySettings

SUITE_NAME = "raw.raw_events"


def build_raw_suite(
    *,
    quality: QualitySettings,
    now: datetime,
    previous_rows: int | None = None,
    from_file: bool = False,
    name: str = SUITE_NAME,
) -> gx.ExpectationSuite:
    """The expectations on one batch of ``raw.raw_events`` (or a source file's frame).

    Args:
        quality: thresholds (``settings.quality``).
        now: the gate's clock, naive UTC; events after ``now + max_future_tolerance`` or
            before ``min_event_time`` (or ``now - max_event_age`` where set and later) block.
        previous_rows: rows of the last good batch; None skips the volume checks.
        from_file: validate a source file's canonical frame before ingestion: no lineage
            columns yet, and rows without a user id are still there (ingestion
            quarantines them), so up to ``max_null_user_rate`` of them is allowed.
        name: the suite's name in GX.
    """
    columns = EVENT_COLUMNS if from_file else EVENT_COLUMNS + LINEAGE_COLUMNS
    user_id_mostly = 1.0 - quality.max_null_user_rate if from_file else 1.0
    newest = now + quality.max_future_tolerance
    oldest = quality.min_event_time
    oldest_name = f"event_time not before {oldest:%Y-%m-%d}"
    oldest_key = "quality.min_event_time"
    if quality.max_event_age is not None and now - quality.max_event_age > oldest:
        oldest = now - quality.max_event_age
        oldest_name = f"event_time not older than {human(quality.max_event_age)}"
        oldest_key = "quality.max_event_age"

    expectations = [
        # ---- schema: every contract column present, nothing unexpected -----------------
        *(
            check(
                gxe.ExpectColumnToExist,
                severity="error",
                name=f"column {column} present",
                why="The event contract (docs/DESIGN.md §2) needs it; "
                    "dbt would fail or fill nulls.",
                key="source.columns",
                column=column,
            )
            for column in columns
        ),
        check(
            gxe.ExpectTableColumnsToMatchSet,
            severity="warning",
            name="no unexpected columns",
            why="An extra column is often a renamed one (its contract column is then missing).",
            key="source.columns",
            column_set=list(columns),
            exact_match=True,
        ),
        check(
            gxe.ExpectTableRowCountToBeBetween,
            severity="error",
            name="batch not empty",
            why="An empty batch means every row was quarantined or the export was cut.",
            key="source.path",
            min_value=1,
        ),
        # ---- types ---------------------------------------------------------------------
        *(
            check(
                gxe.ExpectColumnValuesToBeInTypeList,
                severity="error",
                name=f"{column} is text",
                why="Ids are always text (ARCHITECTURE.md); numbers lose leading zeros.",
                key="source.columns",
                column=column,
                type_list=TEXT_TYPES,
            )
            for column in ("user_id", "item_id", "event_type", "order_id", "category_id")
        ),
        check(
            gxe.ExpectColumnValuesToBeInTypeList,
            severity="error",
            name="event_time is a timestamp",
            why="Text timestamps sort and compare wrongly in every window of the features.",
            key="source.time_unit",
            column="event_time",
            type_list=TIME_TYPES,
        ),
        check(
            gxe.ExpectColumnValuesToBeInTypeList,
            severity="error",
            name="price is a number",
            why="Monetary features sum prices.",
            key="source.columns",
            column="price",
            type_list=FLOAT_TYPES,
        ),
        check(
            gxe.ExpectColumnValuesToBeInTypeList,
            severity="error",
            name="quantity is an integer",
            why="Basket sizes and returns (negative quantity) are computed from it.",
            key="source.columns",
            column="quantity",
            type_list=INT_TYPES,
        ),
        # ---- completeness ----------------------------------------------------------------
        check(
            gxe.ExpectColumnValuesToNotBeNull,
            severity="error",
            name="user_id not null"
            + (f" (<= {quality.max_null_user_rate:.0%} missing)" if from_file else ""),
            why="Rows without a user belong in raw.quarantine, never in raw_events.",
            key="quality.max_null_user_rate",
            column="user_id",
            mostly=user_id_mostly,
        ),
        *(
            check(
                gxe.ExpectColumnValuesToNotBeNull,
                severity="error",
                name=f"{column} not null",
                why="Required by the event contract.",
                key="source.columns",
                column=column,
            )
            for column in ("item_id", "event_type", "event_time")
        ),
        # ---- validity --------------------------------------------------------------------
        check(
            gxe.ExpectColumnValuesToBeInSet,
            severity="error",
            name="event_type in allowed set",
            why="Unknown types would be silently dropped by every feature.",
            key="source.event_types",
            column="event_type",
            value_set=list(EVENT_TYPES),
        ),
        check(
            gxe.ExpectColumnValuesToBeBetween,
            severity="error",
            name=f"event_time not in the future (> {human(quality.max_future_tolerance)} ahead)",
            why="Future events leak into labels and break point-in-time correctness.",
            key="quality.max_future_tolerance",
            column="event_time",
            max_value=newest,
        ),
        check(
            gxe.ExpectColumnValuesToBeBetween,
            severity="error",
            name=oldest_name,
            why="Dates before it are unit or parsing mistakes (epoch 0, ms read as s), not "
            "history: purchase histories of any era since the floor pass.",
            key=oldest_key,
            column="event_time",
            min_value=oldest,
        ),
        check(
            gxe.ExpectColumnValuesToBeBetween,
            severity="error",
            name="price not negative",
            why="Negative prices turn revenue features negative; ingestion should quarantine them.",
            column="price",
            min_value=0,
        ),
        check(
            gxe.ExpectColumnValuesToBeBetween,
            severity="warning",
            name="price positive (zero prices)",
            why="Zero prices are free samples or adjustments; they lower average order values.",
            column="price",
            min_value=0,
            strict_min=True,
        ),
        check(
            gxe.ExpectColumnValuesToNotBeInSet,
            severity="error",
            name="quantity not zero",
            why="A zero quantity is neither a purchase nor a return.",
            column="quantity",
            value_set=[0],
        ),
        check(
            gxe.ExpectColumnValuesToBeBetween,
            severity="warning",
            name=f"returns/cancellations (quantity < 0) <= {quality.warn_return_rate:.0%}",
            why="Returns are kept (features count them) but many of them change label meaning.",
            key="quality.warn_return_rate",
            column="quantity",
            min_value=1,
            mostly=1.0 - quality.warn_return_rate,
        ),
        # ---- ids well formed -------------------------------------------------------------
        *(
            expectation
            for column in ("user_id", "item_id")
            for expectation in (
                check(
                    gxe.ExpectColumnValuesToMatchRegex,
                    severity="error",
                    name=f"{column} well formed (no blanks around)",
                    why="Padded or empty ids split one shopper or product into several.",
                    column=column,
                    regex=WELL_FORMED_ID,
                ),
                check(
                    gxe.ExpectColumnValueLengthsToBeBetween,
                    severity="error",
                    name=f"{column} length 1..{MAX_ID_LENGTH}",
                    why="Longer values are whole records pasted into an id column.",
                    column=column,
                    min_value=1,
                    max_value=MAX_ID_LENGTH,
                ),
                check(
                    gxe.ExpectColumnValuesToNotBeInSet,
                    severity="error",
                    name=f"{column} not a null-like string",
                    why="'nan'/'None' ids are nulls that a careless cast turned into text.",
                    column=column,
                    value_set=NULL_LIKE_IDS,
                ),
            )
        ),
        check(
            gxe.ExpectColumnValuesToNotMatchRegex,
            severity="warning",
            name="user_id not float-like (e.g. '17850.0')",
            why="Ids exported through a float column; harmless if every source does the same.",
            column="user_id",
            regex=r"^\d+\.0$",
        ),
        # ---- volume vs the last good batch ---------------------------------------------
        *volume_checks(previous_rows=previous_rows, tolerance=quality.volume_tolerance),
    ]
    return gx.ExpectationSuite(name=name, expectations=expectations)
