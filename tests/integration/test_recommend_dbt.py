"""The recommendation dbt models on the hand-designed shop, on DuckDB and PostgreSQL.

Every expected value below is worked out by hand from tests/fixtures_raw.py (event
numbers refer to its comments), under its task: horizon 3d, lookback 10d, cutoffs every
2 days. The models' own dbt tests (uniqueness, no future events, unit tests) run too.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from fixtures_raw import HAND_TASK, hand_events, write_raw_events
from shopflow.settings import Settings, load_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _t(day: int, hour: int = 0) -> pd.Timestamp:
    return pd.Timestamp(datetime(2024, 1, day, hour))


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def built(request: pytest.FixtureRequest, shopflow_home) -> Settings:
    from shopflow.recommend.data import build_marts

    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        prefix = request.getfixturevalue("postgres_schema_prefix")
        warehouse = {"backend": "postgres", "postgres_url": url, "schema_prefix": prefix}
    else:
        warehouse = {"backend": "duckdb"}
    settings = load_settings(task=HAND_TASK, warehouse=warehouse)
    settings.ensure_dirs()
    write_raw_events(settings, hand_events())
    build_marts(settings)  # dbt run + the recommendation models' dbt tests
    return settings


def _rows(settings: Settings, name: str, keys: list[str]) -> pd.DataFrame:
    from shopflow.recommend.data import load_mart

    return load_mart(settings, name).set_index(keys).sort_index()


def test_hand_shop_user_item_features_labels_and_category_affinity(built: Settings) -> None:
    from shopflow.recommend.data import load_events, load_mart

    items = _rows(built, "user_item_features", ["user_id", "item_id", "cutoff_time"])
    # u1/i1 before Jan 6: view (1), cart (2), purchase of 2 units (3) at Jan 3 12:00
    row = items.loc[("u1", "i1", _t(6))]
    assert (row["ui_views_lookback"], row["ui_carts_lookback"], row["ui_purchases_lookback"],
            row["ui_quantity_lookback"], row["ui_events_lookback"]) == (1, 1, 1, 2, 3)
    assert row["ui_days_since_last_event"] == pytest.approx(2.5)
    assert row["ui_days_since_last_purchase"] == pytest.approx(2.5)
    # the duplicate (5) of u1's i2 purchase (4) is counted once
    assert items.loc[("u1", "i2", _t(6)), "ui_purchases_lookback"] == 1
    # u1 buys i3 exactly at the Jan 6 cutoff: a feature there, most recent item
    at_cutoff = items.loc[("u1", "i3", _t(6))]
    assert at_cutoff["ui_purchases_lookback"] == 1 and at_cutoff["ui_days_since_last_event"] == 0
    assert at_cutoff["ui_recency_rank"] == 1
    # ...but at Jan 4 both i3 events (Jan 5, Jan 6) are in the future: no row at all
    assert ("u1", "i3", _t(4)) not in items.index
    # the never-bought pair gets the lookback as "days since last purchase"
    assert items.loc[("u2", "i1", _t(4)), "ui_days_since_last_purchase"] == pytest.approx(10.0)

    labels = _rows(built, "purchase_item_labels", ["user_id", "item_id", "cutoff_time"])
    assert ("u1", "i3", _t(4)) in labels.index  # bought Jan 6, in (Jan 4, Jan 7]
    assert ("u1", "i3", _t(8)) not in labels.index  # event 8 is a return, not a purchase
    u3 = labels.loc[("u3", "i2", _t(8))]  # exactly at the window end (Jan 11)
    assert u3["purchases_in_window"] == 1 and u3["quantity_in_window"] == 3
    assert bool(u3["is_known_user"])  # u3 viewed i2 at Jan 7 23:00
    assert ("u2", "i2", _t(14)) in labels.index and ("u2", "i2", _t(12)) not in labels.index
    assert not any(c == _t(20, 12) for c in labels.index.get_level_values("cutoff_time"))

    categories = _rows(built, "user_category_features", ["user_id", "category_id", "cutoff_time"])
    # u1 before Jan 10: c1 <- 1, 2, 3; c2 <- 4, 6, 7, 8 (purchases 4, 7)
    c2 = categories.loc[("u1", "c2", _t(10))]
    assert c2["uc_rank"] == 1 and c2["uc_event_share"] == pytest.approx(4 / 7)
    assert c2["uc_purchase_share"] == pytest.approx(2 / 3)
    assert categories.loc[("u1", "c1", _t(10)), "uc_rank"] == 2

    # what shopflow.recommend reads back: typed events and one cutoff's rows
    events = load_events(built)
    assert len(events) == 15  # 16 rows, one exact duplicate
    assert events["event_time"].dtype == "datetime64[ns]"
    assert set(events["event_type"]) == {"view", "cart", "purchase", "return"}
    one = load_mart(built, "user_item_features", cutoffs=[_t(6)])
    assert set(one["cutoff_time"]) == {_t(6)}
    assert one["ui_events_lookback"].dtype == "float64"
    assert set(one["user_id"]) == {"u1", "u2"}


def _as_text(frame: pd.DataFrame) -> list[tuple[str, ...]]:
    return sorted(tuple("" if pd.isna(v) else str(v) for v in row)
                  for row in frame.itertuples(index=False))


def test_windows_ranges_and_buyers_read_what_the_whole_tables_hold(built: Settings) -> None:
    """What recommendations read one piece at a time (a cutoff's window, a range of
    users, a cutoff's buyers, the purchases) is that piece of the whole table."""
    from shopflow.recommend.data import EventWindows, load_events, load_mart

    events = load_events(built)
    lookback = built.task.lookback
    windowed, whole = EventWindows(built), EventWindows(built, events)
    for cutoff in (_t(4), _t(6), _t(10)):
        window = windowed.window(cutoff, lookback)
        assert window["user_id"].dtype == "category"
        assert window["event_time"].dtype == "datetime64[ns]"
        assert _as_text(window) == _as_text(whole.window(cutoff, lookback)), cutoff
        assert _as_text(windowed.purchased(cutoff)) == _as_text(whole.purchased(cutoff))
    assert _as_text(windowed.purchased()) == _as_text(whole.purchased())
    assert windowed.newest() == whole.newest() == events["event_time"].max()

    items = load_mart(built, "user_item_features", cutoffs=[_t(6)])
    u1 = load_mart(built, "user_item_features", cutoffs=[_t(6)], users=("u1", "u1"))
    assert set(u1["user_id"]) == {"u1"}
    assert _as_text(u1) == _as_text(items[items["user_id"] == "u1"])
    labels = load_mart(built, "purchase_item_labels", cutoffs=[_t(4)])
    buyers = load_mart(built, "user_features", cutoffs=[_t(4)], buyers_only=True)
    everyone = load_mart(built, "user_features", cutoffs=[_t(4)])
    assert set(buyers["user_id"]) == set(labels["user_id"]) & set(everyone["user_id"])
    assert len(buyers) > 0
