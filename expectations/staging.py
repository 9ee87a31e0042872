"""The staging gate: is ``staging.stg_shop__events`` what the marts may build on?

Staging promises typed events, exact duplicates removed and one ``event_id`` each. The
checks here are those promises (dbt's own tests cover them too, but the gate is what
the pipeline stops on and what lands in Data Docs), plus time and price sanity and the
volume of the whole layer vs the last good build: staging only grows, so a drop means
lost data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import great_expectations as gx
import great_expectations.expectations as gxe

from shopflow.settings import EVENT_TYPES

from ._common import (
    EVENT_COLUMNS,
    LINEAGE_COLUMNS,
    TIME_TYPES,
    check,
    human,
    volume_checks,
)

if TYPE_CHECKING:
    from datetime import datetime

    from shopflow.settings import QualitySettings

SUITE_NAME = "staging.stg_shop__events"


def build_staging_suite(
    *,
    quality: QualitySettings,
    now: datetime,
    previous_rows: int | None = None,
    name: str = SUITE_NAME,
) -> gx.ExpectationSuite:
    """The expectations on ``staging.stg_shop__events`` (the whole view).

    Args:
        quality: thresholds (``settings.quality``).
        now: the gate's clock, naive UTC.
        previous_rows: rows at the last good staging build; None skips the volume checks.
        name: the suite's name in GX.
    """
    columns = ("event_id", *EVENT_COLUMNS, *LINEAGE_COLUMNS)
    expectations = [
        *(
            check(
                gxe.ExpectColumnToExist,
                severity="error",
                name=f"column {column} present",
                why="The marts select it.",
                key="source.columns",
                column=column,
            )
            for column in columns
        ),
        check(
            gxe.ExpectTableRowCountToBeBetween,
            severity="error",
            name="staging not empty",
            why="Nothing to build features from.",
            key="source.path",
            min_value=1,
        ),
        check(
            gxe.ExpectColumnValuesToBeUnique,
            severity="error",
            name="event_id unique (duplicates removed)",
            why="Duplicated events double-count purchases and inflate labels.",
            key="quality.duplicate_key",
            column="event_id",
        ),
        *(
            check(
                gxe.ExpectColumnValuesToNotBeNull,
                severity="error",
                name=f"{column} not null",
                why="Keys and timestamps of every feature window.",
                key="source.columns",
                column=column,
            )
            for column in ("event_id", "user_id", "item_id", "event_type", "event_time")
        ),
        check(
            gxe.ExpectColumnValuesToBeInTypeList,
            severity="error",
            name="event_time is a timestamp",
            why="Windows compare timestamps.",
            key="source.time_unit",
            column="event_time",
            type_list=TIME_TYPES,
        ),
        check(
            gxe.ExpectColumnValuesToBeInSet,
            severity="error",
            name="event_type in allowed set",
            why="Features count views, carts, purchases and returns only.",
            key="source.event_types",
            column="event_type",
            value_set=list(EVENT_TYPES),
        ),
        check(
            gxe.ExpectColumnValuesToBeBetween,
            severity="error",
            name=f"event_time not in the future (> {human(quality.max_future_tolerance)} ahead)",
            why="Future events leak into labels.",
            key="quality.max_future_tolerance",
            column="event_time",
            max_value=now + quality.max_future_tolerance,
        ),
        check(
            gxe.ExpectColumnValuesToBeBetween,
            severity="error",
            name="price not negative",
            why="Revenue features sum prices.",
            column="price",
            min_value=0,
        ),
        check(
            gxe.ExpectColumnValuesToNotBeNull,
            severity="warning",
            name=f"price null share <= {quality.warn_null_rate:.0%}",
            why="Events without a price add nothing to monetary features.",
            key="quality.warn_null_rate",
            column="price",
            mostly=1.0 - quality.warn_null_rate,
        ),
        *volume_checks(previous_rows=previous_rows, tolerance=quality.volume_tolerance),
    ]
    return gx.ExpectationSuite(name=name, expectations=expectations)
