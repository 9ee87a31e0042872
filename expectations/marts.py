"""The marts gate: may these features and labels reach Feast and the models?

This is the last stop before ``publish_marts`` writes the snapshots that Feast serves and
training reads. The checks are the marts' promises (ARCHITECTURE.md): one row per key,
non-null features, counts and durations that cannot be negative, rates in [0, 1], nested
windows (each of the task's windows holds the shorter ones), and a label rate that is plausible on its own and close
to the last good build's.

``marts.user_features_v1`` (the frozen features of ``propensity_v1``) has no suite here:
its dbt data tests guard it (see ``GATE_TABLES`` in ``checkpoints.py``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import great_expectations as gx
import great_expectations.expectations as gxe

from shopflow.features.schema import (
    ITEM_TABLE,
    USER_TABLE,
    WINDOWED_FAMILIES,
    Feature,
    FeatureKind,
)

from ._common import TIME_TYPES, check, volume_checks

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from shopflow.settings import QualitySettings

# The column groups come from the feature catalogue (shopflow.features.schema), so a
# feature added to or renamed in the marts is checked without a second list. The user
# suite groups the run's own catalogue by kind (build_user_features_suite(catalogue=...));
# the item groups below are fixed. Each group is in mart order.
ITEM_COUNT_COLUMNS = ITEM_TABLE.names_of("count")
ITEM_RATE_COLUMNS = ITEM_TABLE.names_of("rate")
ITEM_PRICE_COLUMNS = ITEM_TABLE.names_of("price")
ITEM_RANK_COLUMNS = ITEM_TABLE.names_of("rank")
ITEM_FEATURE_COLUMNS = (
    *ITEM_COUNT_COLUMNS,
    *ITEM_RATE_COLUMNS,
    *ITEM_PRICE_COLUMNS,
    *ITEM_RANK_COLUMNS,
)


def _columns_present(columns: tuple[str, ...]) -> list[gx.expectations.Expectation]:
    return [
        check(
            gxe.ExpectColumnToExist,
            severity="error",
            name=f"column {column} present",
            why="Feast's feature views and the models read it by name.",
            column=column,
        )
        for column in columns
    ]


def _one_row_per_key(key: str) -> list[gx.expectations.Expectation]:
    return [
        check(
            gxe.ExpectCompoundColumnsToBeUnique,
            severity="error",
            name=f"one row per ({key}, cutoff_time)",
            why="Duplicate keys make point-in-time joins fan out and double-count rows.",
            column_list=[key, "cutoff_time"],
        ),
        *(
            check(
                gxe.ExpectColumnValuesToNotBeNull,
                severity="error",
                name=f"{column} not null",
                why="Entity key and event timestamp of the feature view.",
                column=column,
            )
            for column in (key, "cutoff_time")
        ),
        check(
            gxe.ExpectColumnValuesToBeInTypeList,
            severity="error",
            name="cutoff_time is a timestamp",
            why="Feast's timestamp field.",
            column="cutoff_time",
            type_list=TIME_TYPES,
        ),
        check(
            gxe.ExpectTableRowCountToBeBetween,
            severity="error",
            name="table not empty",
            why="Nothing to train on or serve.",
            min_value=1,
        ),
    ]


def _names(catalogue: Sequence[Feature], *kinds: FeatureKind) -> tuple[str, ...]:
    return tuple(f.name for f in catalogue if f.kind in kinds)


def _window_pairs(catalogue: Sequence[Feature]) -> list[tuple[str, str]]:
    """``(wider, narrower)`` neighbours of each windowed count family, in window order."""
    pairs = []
    for prefix, _, kind in WINDOWED_FAMILIES:
        if kind != "count":
            continue
        # the catalogue lists a family's windows shortest first
        windowed = re.compile(rf"^{prefix}_\d+[smhd]$")
        family = [f.name for f in catalogue if windowed.match(f.name)]
        pairs += [(wide, narrow) for narrow, wide in zip(family, family[1:], strict=False)]
    return pairs


def build_user_features_suite(
    *,
    quality: QualitySettings,
    previous_rows: int | None = None,
    name: str = "marts.user_features",
    catalogue: Sequence[Feature] | None = None,
) -> gx.ExpectationSuite:
    """Expectations on ``marts.user_features``.

    Args:
        catalogue: the run's user features (``user_feature_catalogue(settings)``); default
            the default task's.
    """
    catalogue = tuple(catalogue if catalogue is not None else USER_TABLE.catalogue)
    durations = _names(catalogue, "duration")
    counts = _names(catalogue, "count")
    rates = _names(catalogue, "rate")
    flags = _names(catalogue, "flag")
    ratios = _names(catalogue, "ratio")
    cyclical = _names(catalogue, "cyclical")
    columns = (*durations, *counts, *rates, *_names(catalogue, "amount", "flag"), *ratios,
               *cyclical)
    non_null = tuple(c for c in columns if c not in {f.name for f in catalogue if f.nullable})
    pairs = _window_pairs(catalogue)
    expectations = [
        *_columns_present(("user_id", "cutoff_time", *columns)),
        *_one_row_per_key("user_id"),
        *(
            check(
                gxe.ExpectColumnValuesToNotBeNull,
                severity="error",
                name=f"{column} not null",
                why="The marts promise non-null features; models would see NaN.",
                column=column,
            )
            for column in non_null
        ),
        *(
            check(
                gxe.ExpectColumnValuesToBeBetween,
                severity="error",
                name=f"{column} >= 0",
                why="Counts and durations cannot be negative; a sign bug in a window.",
                column=column,
                min_value=0,
            )
            for column in (*durations, *counts)
        ),
        *(
            check(
                gxe.ExpectColumnValuesToBeBetween,
                severity="error",
                name=f"{column} >= 0",
                why="Ratios of non-negative quantities; a negative one has a sign bug.",
                column=column,
                min_value=0,
            )
            for column in ratios
        ),
        *(
            check(
                gxe.ExpectColumnValuesToBeBetween,
                severity="error",
                name=f"{column} in [-1, 1]",
                why="A mean of sines or cosines.",
                column=column,
                min_value=-1,
                max_value=1,
            )
            for column in cyclical
        ),
        *(
            check(
                gxe.ExpectColumnValuesToBeBetween,
                severity="error",
                name=f"{column} in [0, 1]",
                why="A rate outside [0, 1] has a wrong denominator.",
                column=column,
                min_value=0,
                max_value=1,
            )
            for column in rates
        ),
        *(
            check(
                gxe.ExpectColumnValuesToBeInSet,
                severity="error",
                name=f"{column} is 0/1",
                why="A flag.",
                column=column,
                value_set=[0, 1],
            )
            for column in flags
        ),
        *(
            check(
                gxe.ExpectColumnPairValuesAToBeGreaterThanB,
                severity="error",
                name=f"{wide} >= {narrow}",
                why="A longer window holds every event of a shorter one.",
                column_A=wide,
                column_B=narrow,
                or_equal=True,
            )
            for wide, narrow in pairs
        ),
        # Warnings: a feature that carries no information. Constant columns and a window
        # that never adds anything to the shorter one (the same column twice) pass the
        # gate but are reported, so a task whose windows do not fit the data is noticed.
        *(
            check(
                gxe.ExpectColumnUniqueValueCountToBeBetween,
                severity="warning",
                name=f"{column} not constant",
                why="A constant feature tells the models nothing (a window that fits no data?).",
                column=column,
                min_value=2,
            )
            for column in columns
        ),
        *(
            check(
                gxe.ExpectColumnPairValuesAToBeGreaterThanB,
                severity="warning",
                name=f"{wide} differs from {narrow}",
                why="The longer window never adds an event: the two features are one column.",
                column_A=wide,
                column_B=narrow,
                or_equal=False,
                mostly=1e-9,
            )
            for wide, narrow in pairs
        ),
        *volume_checks(previous_rows=previous_rows, tolerance=quality.volume_tolerance),
    ]
    return gx.ExpectationSuite(name=name, expectations=expectations)


def build_item_features_suite(
    *,
    quality: QualitySettings,
    previous_rows: int | None = None,
    name: str = "marts.item_features",
) -> gx.ExpectationSuite:
    """Expectations on ``marts.item_features``."""
    expectations = [
        *_columns_present(("item_id", "cutoff_time", *ITEM_FEATURE_COLUMNS)),
        *_one_row_per_key("item_id"),
        *(
            check(
                gxe.ExpectColumnValuesToBeBetween,
                severity="error",
                name=f"{column} >= 0",
                why="Counts cannot be negative.",
                column=column,
                min_value=0,
            )
            for column in ITEM_COUNT_COLUMNS
        ),
        *(
            check(
                gxe.ExpectColumnValuesToBeBetween,
                severity="warning",
                name=f"{column} in [0, 1]",
                why="A rate outside [0, 1] has a wrong denominator.",
                column=column,
                min_value=0,
                max_value=1,
            )
            for column in ITEM_RATE_COLUMNS
        ),
        *(
            check(
                gxe.ExpectColumnValuesToBeBetween,
                severity="error",
                name=f"{column} >= 1",
                why="Ranks start at 1.",
                column=column,
                min_value=1,
            )
            for column in ITEM_RANK_COLUMNS
        ),
        check(
            gxe.ExpectColumnPairValuesAToBeGreaterThanB,
            severity="error",
            name="item_max_price >= item_min_price",
            why="Swapped aggregates.",
            column_A="item_max_price",
            column_B="item_min_price",
            or_equal=True,
            ignore_row_if="either_value_is_missing",
        ),
        check(
            gxe.ExpectColumnValuesToNotBeNull,
            severity="warning",
            name=f"item_avg_price null share <= {quality.warn_null_rate:.0%}",
            why="Null when no event in the window carried a price.",
            column="item_avg_price",
            mostly=1.0 - quality.warn_null_rate,
        ),
        *volume_checks(previous_rows=previous_rows, tolerance=quality.volume_tolerance),
    ]
    return gx.ExpectationSuite(name=name, expectations=expectations)


def build_purchase_labels_suite(
    *,
    quality: QualitySettings,
    previous_rows: int | None = None,
    previous_label_rate: float | None = None,
    name: str = "marts.purchase_labels",
) -> gx.ExpectationSuite:
    """Expectations on ``marts.purchase_labels``, including the label rate.

    The label rate must lie in ``quality.label_rate_bounds`` (a rate near 0 or 1 means a
    broken horizon or join) and, when a good build exists, within
    ``quality.max_label_rate_shift`` of its rate.
    """
    low, high = quality.label_rate_bounds
    expectations = [
        *_columns_present(("user_id", "cutoff_time", "label", "label_window_end")),
        *_one_row_per_key("user_id"),
        check(
            gxe.ExpectColumnValuesToBeInSet,
            severity="error",
            name="label is 0/1",
            why="A binary target.",
            column="label",
            value_set=[0, 1],
        ),
        check(
            gxe.ExpectColumnPairValuesAToBeGreaterThanB,
            severity="error",
            name="label_window_end > cutoff_time",
            why="The label window lies after the cutoff, or labels leak into features.",
            column_A="label_window_end",
            column_B="cutoff_time",
        ),
        check(
            gxe.ExpectColumnMeanToBeBetween,
            severity="error",
            name=f"label rate in [{low:g}, {high:g}]",
            why="A label rate near 0 or 1 means a broken horizon, join or event mapping.",
            key="quality.label_rate_bounds",
            column="label",
            min_value=low,
            max_value=high,
        ),
    ]
    if previous_label_rate is not None:
        shift = quality.max_label_rate_shift
        expectations.append(
            check(
                gxe.ExpectColumnMeanToBeBetween,
                severity="error",
                name=f"label rate within {shift:g} of last good ({previous_label_rate:.3f})",
                why="A sudden change of the base rate invalidates the champion comparison.",
                key="quality.max_label_rate_shift",
                column="label",
                min_value=max(0.0, previous_label_rate - shift),
                max_value=min(1.0, previous_label_rate + shift),
            )
        )
    expectations += volume_checks(previous_rows=previous_rows, tolerance=quality.volume_tolerance)
    return gx.ExpectationSuite(name=name, expectations=expectations)


def build_marts_suite(
    *,
    quality: QualitySettings,
    previous_rows: Mapping[str, int] | None = None,
    previous_label_rate: float | None = None,
    user_catalogue: Sequence[Feature] | None = None,
) -> dict[str, gx.ExpectationSuite]:
    """The marts layer's suites, keyed by table name (one suite per mart).

    ``user_catalogue`` is the run's user features (default: the default task's).
    """
    rows = previous_rows or {}
    return {
        "user_features": build_user_features_suite(
            quality=quality, previous_rows=rows.get("user_features"), catalogue=user_catalogue
        ),
        "item_features": build_item_features_suite(
            quality=quality, previous_rows=rows.get("item_features")
        ),
        "purchase_labels": build_purchase_labels_suite(
            quality=quality,
            previous_rows=rows.get("purchase_labels"),
            previous_label_rate=previous_label_rate,
        ),
    }
