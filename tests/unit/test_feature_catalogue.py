"""The feature catalogue is the one list: dbt docs, SQL, Feast, marts suite, synthetic frames
and the baseline all agree with it (a mismatch anywhere fails here, naming the feature)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from shopflow.features.schema import (
    FEATURE_TABLES,
    ITEM_TABLE,
    USER_TABLE,
    FeatureTable,
)

MARTS = Path(__file__).resolve().parents[2] / "dbt_project" / "models" / "marts"


def _model(table: FeatureTable) -> dict[str, Any]:
    document = yaml.safe_load((MARTS / f"{table.name}.yml").read_text())
    (model,) = [m for m in document["models"] if m["name"] == table.name]
    return dict(model)


def _normalise(text: str | None) -> str:
    return " ".join((text or "").split())


@pytest.mark.parametrize("table", FEATURE_TABLES, ids=lambda t: t.name)
def test_dbt_yml_lists_every_feature_in_mart_order(table: FeatureTable) -> None:
    columns = [c["name"] for c in _model(table)["columns"]]
    assert columns[:2] == [table.join_key, "cutoff_time"]
    assert columns[2:] == table.feature_names


@pytest.mark.parametrize("table", FEATURE_TABLES, ids=lambda t: t.name)
def test_dbt_yml_descriptions_are_the_catalogue_descriptions(table: FeatureTable) -> None:
    documented = {c["name"]: c.get("description") for c in _model(table)["columns"]}
    wrong = {
        f.name: (documented.get(f.name), f.description)
        for f in table.catalogue
        if _normalise(documented.get(f.name)) != _normalise(f.description)
    }
    assert not wrong, f"dbt yml vs catalogue (yml, catalogue): {wrong}"


def _final_columns(sql: str) -> list[str]:
    """Output column names of the model's ``final`` CTE, in select order."""
    body = sql.split("final as (", 1)[1].split("\n    from ", 1)[0]
    body = re.sub(r"--[^\n]*", "", body)  # comments may hold commas
    body = body.split("select", 1)[1]
    names: list[str] = []
    depth = 0
    item = ""
    for char in body:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            names.append(item)
            item = ""
        else:
            item += char
    names.append(item)
    out = []
    for expression in names:
        match = re.search(r"(?:\bas\s+)?([a-z_0-9]+)\s*$", expression.strip(), flags=re.I)
        assert match, expression
        out.append(match.group(1))
    return out


class _Macros:
    """Stand-ins for the project's dbt macros when rendering a model with plain Jinja."""

    def __init__(self, windows: tuple[int, ...]) -> None:
        self.windows = windows

    def feature_windows(self) -> list[int]:
        return list(self.windows)

    def window_suffix(self, seconds: int) -> str:
        from shopflow.features.windows import window_suffix

        return window_suffix(int(seconds))

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: f"{name}({', '.join(map(str, args))})"


def _rendered(table: FeatureTable, windows: tuple[int, ...]) -> str:
    """The model's SQL with its Jinja expanded for these feature windows."""
    import jinja2

    source = (MARTS / f"{table.name}.sql").read_text()
    return jinja2.Environment().from_string(source).render(
        var=lambda name, default=None: default, ref=lambda name: name, shopflow=_Macros(windows),
    )


@pytest.mark.parametrize("table", FEATURE_TABLES, ids=lambda t: t.name)
def test_mart_sql_selects_the_catalogue_in_order(table: FeatureTable) -> None:
    from shopflow.features.schema import DEFAULT_WINDOWS

    columns = _final_columns(_rendered(table, DEFAULT_WINDOWS))
    assert columns == [table.join_key, "cutoff_time", *table.feature_names]


@pytest.mark.parametrize("task", [("15m", "1h"), ("3d", "10d"), ("1d", "365d")])
def test_user_features_sql_selects_any_tasks_catalogue_in_order(task: tuple[str, str]) -> None:
    from shopflow.features.schema import PROFILE_CYCLES, user_feature_catalogue, user_table
    from shopflow.features.windows import task_windows
    from shopflow.settings import load_settings

    settings = load_settings(task={"horizon": task[0], "lookback": task[1]})
    windows = task_windows(settings)
    columns = _final_columns(_rendered(USER_TABLE, windows))
    features = user_table(settings).feature_names
    # the mart holds the task's catalogue in order, plus any time profile whose cycle is
    # longer than the task's windows (built, but not a feature of that task)
    assert [c for c in columns if c in features] == features
    assert set(columns) - set(features) - {"user_id", "cutoff_time"} <= set(PROFILE_CYCLES)
    assert columns[:2] == ["user_id", "cutoff_time"]
    names = [f.name for f in user_feature_catalogue(settings)]
    assert len(names) == len(set(names))


def test_the_sql_decides_the_contested_descriptions() -> None:
    # The Feast descriptions once said "per view" / "per purchase" / "first event";
    # user_features.sql computes these (a regression guard on the fixed texts).
    assert USER_TABLE.feature("cart_rate").description.startswith("carts / (views + carts)")
    assert USER_TABLE.feature("conversion_rate").description.startswith(
        "purchases / (views + carts + purchases)"
    )
    assert USER_TABLE.feature("return_rate").description.startswith("returns / (purchases + returns)")
    assert "all history" in USER_TABLE.feature("tenure_days").description
    assert ITEM_TABLE.feature("item_conversion_rate").description.startswith(
        "purchases / (views + carts + purchases)"
    )


def test_feast_fields_are_the_catalogue(settings: Any) -> None:
    from shopflow.features.definitions import build_definitions

    defs = build_definitions(settings)
    for table in FEATURE_TABLES:
        view = defs.view_for(table)
        assert [(f.name, f.description) for f in view.features] == [
            (f.name, f.description) for f in table.catalogue
        ]


#: The range check the user suite puts on a feature of each kind (amounts have none).
_USER_RANGE_CHECK = {"duration": "{} >= 0", "count": "{} >= 0", "ratio": "{} >= 0",
                     "rate": "{} in [0, 1]", "cyclical": "{} in [-1, 1]", "flag": "{} is 0/1"}


def test_marts_suite_checks_every_catalogue_feature_by_kind() -> None:
    from expectations import marts

    from shopflow.settings import QualitySettings

    suite = marts.build_user_features_suite(quality=QualitySettings())
    names = {(e.meta or {})["check"] for e in suite.expectations}
    for feature in USER_TABLE.catalogue:
        assert f"column {feature.name} present" in names, feature.name
        if feature.kind in _USER_RANGE_CHECK:
            assert _USER_RANGE_CHECK[feature.kind].format(feature.name) in names, feature.name
    assert sorted(marts.ITEM_FEATURE_COLUMNS) == sorted(ITEM_TABLE.feature_names)
    for table, groups in (
        (ITEM_TABLE, {"rate": marts.ITEM_RATE_COLUMNS, "count": marts.ITEM_COUNT_COLUMNS,
                      "price": marts.ITEM_PRICE_COLUMNS, "rank": marts.ITEM_RANK_COLUMNS}),
    ):
        for kind, columns in groups.items():
            assert columns, (table.name, kind)
            assert all(table.feature(c).kind == kind for c in columns), (table.name, kind)


def test_user_features_promise_no_nulls_but_purchase_ages_and_the_suite_checks_each() -> None:
    from expectations.marts import build_user_features_suite

    from shopflow.features.schema import FAMILY_FEATURES
    from shopflow.settings import QualitySettings

    # NULL = never bought, or a family feature where undefined (the missing-value policy
    # in user_feature_catalogue); the other base features never are
    family = {f.name for f in FAMILY_FEATURES}
    nullable = {f.name for f in USER_TABLE.catalogue if f.nullable}
    assert nullable - family == {"days_since_first_purchase", "days_since_last_purchase"}
    assert nullable & family
    suite = build_user_features_suite(quality=QualitySettings())
    not_null = {
        e.column for e in suite.expectations
        if type(e).__name__ == "ExpectColumnValuesToNotBeNull"
    }
    assert set(USER_TABLE.feature_names) - nullable <= not_null
    assert not nullable & not_null


def test_value_ranges_follow_the_kind() -> None:
    assert USER_TABLE.feature("cart_rate").value_range == (0.0, 1.0)
    assert USER_TABLE.feature("is_returning_buyer").value_range == (0.0, 1.0)
    assert USER_TABLE.feature("events_90d").value_range == (0.0, None)
    assert ITEM_TABLE.feature("item_popularity_rank").value_range == (1.0, None)
    assert ITEM_TABLE.feature("item_popularity_rank").mart_type == "INTEGER"
    assert ITEM_TABLE.feature("item_avg_price").nullable
    assert USER_TABLE.feature("hour_sin_mean_lookback").value_range == (-1.0, 1.0)
    assert USER_TABLE.feature("event_rate_short_over_lookback").value_range == (0.0, None)
    with pytest.raises(KeyError, match="user_features has no feature 'nope'"):
        USER_TABLE.feature("nope")


def test_synthetic_frames_have_the_catalogue_columns() -> None:
    from shopflow.features.synthetic import random_feature_frame
    from shopflow.training.synthetic import USER_FEATURES, synthetic_training_frame

    frame = synthetic_training_frame(rows=50, cutoffs=2, seed=3)
    assert list(USER_FEATURES) == USER_TABLE.feature_names
    assert list(frame.columns) == ["user_id", "event_timestamp", "label", *USER_TABLE.feature_names]
    for table in FEATURE_TABLES:
        mart = random_feature_frame(table, 10, seed=1)
        assert list(mart.columns) == [table.join_key, "cutoff_time", *table.feature_names]


def test_baseline_reads_the_catalogue_baseline_features() -> None:
    from shopflow.training.families.baseline import RFM_FEATURES, select_features

    expected = [f.name for f in USER_TABLE.catalogue if f.baseline]
    assert list(RFM_FEATURES) == expected
    assert {"recency_days", "purchases_90d", "monetary_lifetime"} <= set(expected)
    assert select_features(list(reversed(USER_TABLE.feature_names))) == expected
    # another task's windows are read too, whatever their names
    assert select_features(["events_15m", "views_lookback", "recency_days", "monetary_1h"]) == [
        "recency_days", "events_15m", "monetary_1h",
    ]
