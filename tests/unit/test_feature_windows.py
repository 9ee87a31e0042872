"""Feature windows: the task's ladder, the settings override, compact names that the
Python function and the dbt macro agree on, and a versioned feature service per catalogue."""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import pytest

from shopflow.features.schema import (
    DEFAULT_WINDOWS,
    LEGACY_USER_CATALOGUE,
    PROPENSITY_V1,
    PROPENSITY_V2,
    USER_TABLE,
    propensity_service_name,
    user_feature_catalogue,
    user_table,
)
from shopflow.features.windows import ladder, task_windows, window_suffix
from shopflow.settings import load_settings
from shopflow.transform import dbt_vars

MACROS = Path(__file__).resolve().parents[2] / "dbt_project" / "macros" / "windows.sql"
DAY, HOUR, MINUTE = 86_400, 3_600, 60


@pytest.mark.parametrize(
    ("seconds", "suffix"),
    [(30 * MINUTE, "30m"), (HOUR, "1h"), (90 * MINUTE, "90m"), (DAY, "1d"), (7 * DAY, "7d"),
     (36 * HOUR, "36h"), (45, "45s"), (DAY + 1, "86401s"), (90 * DAY, "90d")],
)
def test_window_suffix_is_compact(seconds: int, suffix: str) -> None:
    assert window_suffix(seconds) == suffix


def _macro_suffix(seconds: int) -> str:
    # the dbt macro is plain Jinja: render it as dbt would and call it
    template = MACROS.read_text() + "{{ window_suffix(seconds) }}"
    rendered = jinja2.Environment().from_string(template).render(seconds=seconds)
    return rendered.strip()


@pytest.mark.parametrize(
    "seconds",
    [1, 45, MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 90 * MINUTE, 18 * HOUR, DAY, 36 * HOUR,
     DAY + 1, 7 * DAY, 30 * DAY, 90 * DAY, 365 * DAY],
)
def test_the_dbt_macro_names_windows_like_python(seconds: int) -> None:
    assert _macro_suffix(seconds) == window_suffix(seconds)


@pytest.mark.parametrize(
    ("horizon", "lookback", "expected"),
    [
        ("30d", "90d", ("7d", "30d", "90d")),
        ("3d", "10d", ("18h", "3d", "10d")),
        ("15m", "60m", ("3m", "15m", "1h")),
        ("1h", "1h", ("15m", "1h")),
        ("1d", "365d", ("6h", "1d", "4d", "16d", "64d", "256d", "365d")),
        ("14d", "12h", ("12h",)),  # the whole ladder is past the lookback: the lookback only
    ],
)
def test_the_ladder_runs_from_a_quarter_horizon_to_the_lookback(
    horizon: str, lookback: str, expected: tuple[str, ...]
) -> None:
    settings = load_settings(task={"horizon": horizon, "lookback": lookback})
    windows = task_windows(settings)
    assert tuple(window_suffix(w) for w in windows) == expected
    assert windows == tuple(sorted(set(windows)))
    assert windows[-1] == int(settings.task.lookback.total_seconds())


def test_default_windows_are_the_default_tasks() -> None:
    assert task_windows(load_settings()) == DEFAULT_WINDOWS == ladder(30 * DAY, 90 * DAY)
    assert user_table(load_settings()) is USER_TABLE


def test_settings_override_the_windows() -> None:
    settings = load_settings(task={"lookback": "7d"},
                             features={"windows": ["1d", "1h", "7d", "24h", "30m"]})
    assert tuple(window_suffix(w) for w in task_windows(settings)) == ("30m", "1h", "1d", "7d")
    names = user_table(settings).feature_names
    assert [n for n in names if re.fullmatch(r"events_\d+[mhd]", n)] == [
        "events_30m", "events_1h", "events_1d", "events_7d",
    ]
    assert dbt_vars(settings)["feature_window_seconds"] == [30 * MINUTE, HOUR, DAY, 7 * DAY]


def test_a_window_past_the_lookback_is_refused() -> None:
    settings = load_settings(task={"lookback": "7d"}, features={"windows": ["1d", "30d"]})
    with pytest.raises(ValueError, match="30d is longer than the lookback 7d"):
        task_windows(settings)


@pytest.mark.parametrize(("horizon", "lookback"), [("15m", "1h"), ("30d", "90d"), ("1h", "1h")])
def test_no_two_features_share_a_name_or_a_window(horizon: str, lookback: str) -> None:
    settings = load_settings(task={"horizon": horizon, "lookback": lookback})
    names = [f.name for f in user_feature_catalogue(settings)]
    assert len(names) == len(set(names))
    # the BG/NBD family reads these by name and meaning
    assert {"purchase_days_lifetime", "days_since_first_purchase", "days_since_last_purchase",
            "tenure_days", "recency_days"} <= set(names)


def test_the_feature_service_is_versioned_by_catalogue() -> None:
    assert propensity_service_name(LEGACY_USER_CATALOGUE) == PROPENSITY_V1
    assert propensity_service_name(USER_TABLE.catalogue) == PROPENSITY_V2
    assert load_settings().features.feature_service == PROPENSITY_V2
    legacy = [f.name for f in LEGACY_USER_CATALOGUE]
    assert {"events_lookback", "events_7d", "events_30d"} <= set(legacy)


def test_the_widest_window_column_stands_for_the_lookback() -> None:
    from shopflow.features.schema import widest_window_column

    assert widest_window_column(USER_TABLE.feature_names, "events") == "events_90d"
    assert widest_window_column(["events_90m", "events_1h", "events_2h"], "events") == "events_2h"
    assert widest_window_column(["events_lookback", "events_7d"], "events") == "events_lookback"
    assert widest_window_column(["purchases_lifetime"], "purchases") is None


def test_time_profiles_need_history_as_long_as_their_cycle() -> None:
    from shopflow.features.schema import PROFILE_CYCLES

    minutes = user_table(load_settings(task={"horizon": "30m", "lookback": "60m"})).feature_names
    days = user_table(load_settings(task={"horizon": "1d", "lookback": "3d"})).feature_names
    default = user_table(load_settings()).feature_names
    assert not set(PROFILE_CYCLES) & set(minutes)
    assert {"hour_sin_mean_lookback", "night_share_lookback"} <= set(days)
    assert "weekday_sin_mean_lookback" not in days
    assert set(PROFILE_CYCLES) <= set(default)
