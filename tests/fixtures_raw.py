"""Small, hand-designed ``raw.raw_events`` tables for tests (any part may reuse them).

``write_raw_events(settings, events)`` creates ``<prefix>raw.raw_events`` exactly as
docs/ARCHITECTURE.md describes it, in the DuckDB file at ``settings.warehouse_path`` or in
PostgreSQL (``settings.warehouse.postgres_url``), without needing ``shopflow.ingest``.

Import it as ``from fixtures_raw import ...`` (pytest puts ``tests/`` on ``sys.path``
for the root conftest; ruff treats it as first-party).

``hand_events()`` is a 16-row shop designed so that every feature and label can be worked
out on paper; ``HAND_TASK`` is the task it is designed for and the ``EXPECTED_*`` values
below were computed by hand from it (see the comments). Its edge cases: an exact
duplicate in a later batch, events exactly on a cutoff and exactly on a lookback
boundary, a purchase exactly at a label window's end, a return sent as a negative-
quantity purchase, purchases without an order id, an event without a category.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from shopflow.settings import Settings

RAW_EVENTS_COLUMNS: dict[str, str] = {
    "user_id": "VARCHAR",
    "item_id": "VARCHAR",
    "event_type": "VARCHAR",
    "event_time": "TIMESTAMP",
    "price": "DOUBLE PRECISION",
    "quantity": "INTEGER",
    "order_id": "VARCHAR",
    "category_id": "VARCHAR",
    "batch_id": "VARCHAR",
    "source_file": "VARCHAR",
    "source_row": "BIGINT",
    "ingested_at": "TIMESTAMP",
}


@dataclass(frozen=True)
class RawEvent:
    """One row of raw.raw_events; lineage columns have test defaults."""

    user_id: str
    item_id: str
    event_type: str
    event_time: datetime
    price: float | None = None
    quantity: int | None = 1
    order_id: str | None = None
    category_id: str | None = None
    batch_id: str = "b1"
    source_file: str = "/data/hand_events.csv"
    source_row: int = 1
    ingested_at: datetime = datetime(2024, 1, 21)


def _t(day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2024, 1, day, hour, minute)


# The task the hand events are designed for: 3-day label window, 10-day lookback,
# cutoffs every 2 days (epoch-aligned: 2024-01-01 is an odd epoch day, so cutoffs fall on
# even January days).
HAND_TASK: dict[str, str] = {"horizon": "3d", "lookback": "10d", "cutoff_every": "2d"}


def hand_events() -> list[RawEvent]:
    """The hand-designed shop (numbers in comments are referred to below)."""
    events = [
        # u1: browses, buys an order of two lines, buys again exactly at a cutoff, returns
        RawEvent("u1", "i1", "view", _t(1, 10), 10.0, 1, None, "c1"),  # 1  first event
        RawEvent("u1", "i1", "cart", _t(2), 10.0, 1, None, "c1"),  # 2  on Jan 12's lookback edge
        RawEvent("u1", "i1", "purchase", _t(3, 12), 10.0, 2, "o1", "c1"),  # 3
        RawEvent("u1", "i2", "purchase", _t(3, 12), 5.0, 1, "o1", "c2"),  # 4
        RawEvent("u1", "i3", "view", _t(5, 8), 20.0, 1, None, "c2"),  # 6
        RawEvent("u1", "i3", "purchase", _t(6), 20.0, 1, "o2", "c2"),  # 7  exactly at cutoff Jan 6
        RawEvent("u1", "i3", "purchase", _t(9), 20.0, -1, "o3", "c2"),  # 8  a return
        # u2: views, carts, buys once later
        RawEvent("u2", "i1", "view", _t(4), 10.0, 1, None, "c1"),  # 9  exactly at cutoff Jan 4
        RawEvent("u2", "i2", "view", _t(10, 15), None, 1, None, "c2"),  # 10 no price
        RawEvent("u2", "i2", "cart", _t(12, 9), None, 1, None, "c2"),  # 11
        RawEvent("u2", "i2", "purchase", _t(15, 10), 5.0, 1, "o4", "c2"),  # 16
        # u3: buys twice exactly at the end of Jan 8's label window, no order ids
        RawEvent("u3", "i2", "view", _t(7, 23), 5.0, 1, None, "c2"),  # 12
        RawEvent("u3", "i2", "purchase", _t(11), 5.0, 3, None, "c2"),  # 13
        RawEvent("u3", "i1", "purchase", _t(11), 10.0, None, None, "c1"),  # 14 quantity missing
        # u4: one view at the very end, no category
        RawEvent("u4", "i4", "view", _t(20, 12), 7.0, 1, None, None),  # 15 last event
    ]
    numbered = [replace(event, source_row=row) for row, event in enumerate(events, start=1)]
    # 5: an exact duplicate of 4, delivered again in a later batch
    duplicate = replace(
        numbered[3], batch_id="b2", source_file="/data/hand_events_again.csv",
        source_row=1, ingested_at=datetime(2024, 1, 22),
    )
    return [*numbered, duplicate]


# ---- hand-computed expectations for hand_events() under HAND_TASK -------------------

EXPECTED_TRAINING_CUTOFFS = [_t(day) for day in (4, 6, 8, 10, 12, 14, 16)]
# min event Jan 1 10:00 + 2d = Jan 3 10:00 -> first even day Jan 4;
# max event Jan 20 12:00 - 3d = Jan 17 12:00 -> last even day Jan 16.
EXPECTED_SERVING_CUTOFF = _t(20, 12)
EXPECTED_DISTINCT_EVENTS = 15  # 16 rows, one exact duplicate

# (user, cutoff) -> label. Rows exist where the user has an event at or before the cutoff.
EXPECTED_LABELS: dict[tuple[str, datetime], int] = {
    **{("u1", c): 0 for c in EXPECTED_TRAINING_CUTOFFS},
    **{("u2", c): 0 for c in EXPECTED_TRAINING_CUTOFFS},
    **{("u3", c): 0 for c in EXPECTED_TRAINING_CUTOFFS[2:]},
    ("u1", _t(4)): 1,  # 7 at Jan 6 is in (Jan 4, Jan 7]; 8 (Jan 9) is a return, not a purchase
    ("u2", _t(14)): 1,  # 16 at Jan 15 10:00; for Jan 12 the window ends Jan 15 00:00
    ("u3", _t(8)): 1,  # 13/14 exactly at the window end Jan 11 00:00
    ("u3", _t(10)): 1,
}
# every known customer: u1's last event (Jan 9) is out of the lookback (Jan 10 12:00, Jan 20
# 12:00], but u1 is scored all the same (dormant, with its lifetime history)
EXPECTED_SERVING_USERS = ["u1", "u2", "u3", "u4"]

EXPECTED_USER_FEATURES: dict[tuple[str, datetime], dict[str, float | None]] = {
    # HAND_TASK's windows: 18h (3d / 4), 3d (the horizon), 10d (the lookback; 12d is past it).
    # lookback (Dec 31, Jan 10]: events 1,2,3,4,6,7,8 (5 is the duplicate)
    ("u1", _t(10)): {
        "events_10d": 7, "events_3d": 1, "events_18h": 0,  # 3d: (Jan 7, Jan 10] holds the return 8
        "views_lookback": 2, "carts_lookback": 1, "purchases_10d": 3,
        "purchases_3d": 0, "returns_lookback": 1, "orders_lookback": 2,
        "monetary_10d": 45.0, "monetary_3d": 0.0,  # 10*2 + 5*1 + 20*1
        "avg_order_value": 22.5, "avg_basket_size": 2.0,  # units 2+1+1 over 2 orders
        "cart_rate": 1 / 3, "conversion_rate": 0.5, "return_rate": 0.25,
        "recency_days": 1.0, "days_since_last_purchase": 4.0, "tenure_days": 8 + 14 / 24,
        "days_since_first_purchase": 6.5,  # 3 and 4 at Jan 3 12:00
        "purchases_lifetime": 3, "orders_lifetime": 2, "purchase_days_lifetime": 2,
        "monetary_lifetime": 45.0,
        "distinct_items_lookback": 3, "distinct_categories_lookback": 2,
        "active_days_lookback": 6, "is_returning_buyer": 1.0,
    },
    # lookback (Jan 2 00:00, Jan 12]: event 2 sits exactly on the open edge -> 3,4,6,7,8;
    # the lifetime features still see 1 and 2
    ("u1", _t(12)): {
        "events_10d": 5, "events_3d": 0, "views_lookback": 1, "carts_lookback": 0,
        "purchases_10d": 3, "purchases_3d": 0, "returns_lookback": 1,
        "cart_rate": 0.0, "recency_days": 3.0, "days_since_last_purchase": 6.0,
        "tenure_days": 10 + 14 / 24, "active_days_lookback": 4,
    },
    # events 9, 10 (11 is 9 hours after the cutoff); no purchase, so no days since one
    ("u2", _t(12)): {
        "events_10d": 2, "events_3d": 1, "views_lookback": 2, "purchases_10d": 0,
        "orders_lookback": 0, "monetary_10d": 0.0, "avg_order_value": 0.0, "avg_basket_size": 0.0,
        "cart_rate": 0.0, "conversion_rate": 0.0, "return_rate": 0.0,
        "recency_days": 1.375, "days_since_last_purchase": None,
        "days_since_first_purchase": None, "purchases_lifetime": 0, "tenure_days": 8.0,
        "distinct_categories_lookback": 2, "is_returning_buyer": 0.0,
    },
    # events 12, 13, 14: two purchases without an order id are two orders, on one day
    ("u3", _t(12)): {
        "events_10d": 3, "events_3d": 2, "purchases_10d": 2, "purchases_3d": 2,
        "orders_lookback": 2, "monetary_10d": 25.0, "monetary_3d": 25.0, "avg_order_value": 12.5,
        "avg_basket_size": 2.0, "conversion_rate": 2 / 3, "recency_days": 1.0,
        "days_since_last_purchase": 1.0, "days_since_first_purchase": 1.0,
        "orders_lifetime": 2, "purchase_days_lifetime": 1, "tenure_days": 4 + 1 / 24,
        "is_returning_buyer": 1.0,
    },
    # the serving snapshot: one view, no category
    ("u4", _t(20, 12)): {
        "events_10d": 1, "events_18h": 1, "recency_days": 0.0, "tenure_days": 0.0,
        "distinct_categories_lookback": 0, "days_since_last_purchase": None,
    },
    # dormant at the serving snapshot (last event Jan 9, out of the lookback) but scored,
    # with all its history
    ("u1", _t(20, 12)): {
        "events_10d": 0, "views_lookback": 0, "orders_lookback": 0, "recency_days": 11.5,
        "tenure_days": 19 + 2 / 24, "days_since_last_purchase": 14.5,
        "days_since_first_purchase": 17.0, "purchases_lifetime": 3, "orders_lifetime": 2,
        "monetary_lifetime": 45.0, "is_returning_buyer": 1.0,
    },
}

# marts.user_features_v1 (the frozen propensity_v1 SQL): the values user_features held
# before its catalogue was generated for the task. Rows only where the user has an event
# in (cutoff - 10d, cutoff]; windows 7d and 30d capped at the lookback (10d).
EXPECTED_SERVING_USERS_V1 = ["u2", "u3", "u4"]  # u1's last event (Jan 9) is out of the lookback
EXPECTED_USER_FEATURES_V1: dict[tuple[str, datetime], dict[str, float]] = {
    # window (Dec 31, Jan 10]: events 1,2,3,4,6,7,8 (5 is the duplicate)
    ("u1", _t(10)): {
        "events_lookback": 7, "events_7d": 5, "events_30d": 7,  # 7d: (Jan 3, Jan 10]
        "views_lookback": 2, "carts_lookback": 1, "purchases_lookback": 3,
        "purchases_7d": 3, "purchases_30d": 3, "returns_lookback": 1, "orders_lookback": 2,
        "monetary_lookback": 45.0, "monetary_30d": 45.0,  # 10*2 + 5*1 + 20*1
        "avg_order_value": 22.5, "avg_basket_size": 2.0,  # units 2+1+1 over 2 orders
        "cart_rate": 1 / 3, "conversion_rate": 0.5, "return_rate": 0.25,
        "recency_days": 1.0, "days_since_last_purchase": 4.0, "tenure_days": 8 + 14 / 24,
        "distinct_items_lookback": 3, "distinct_categories_lookback": 2,
        "active_days_lookback": 6, "is_returning_buyer": 1.0,
    },
    # window (Jan 2 00:00, Jan 12]: event 2 sits exactly on the open edge -> 3,4,6,7,8
    ("u1", _t(12)): {
        "events_lookback": 5, "events_7d": 3, "views_lookback": 1, "carts_lookback": 0,
        "purchases_lookback": 3, "purchases_7d": 1, "returns_lookback": 1,
        "cart_rate": 0.0, "recency_days": 3.0, "days_since_last_purchase": 6.0,
        "tenure_days": 8.5, "active_days_lookback": 4,
    },
    # events 9, 10 (11 is 9 hours after the cutoff); no purchase
    ("u2", _t(12)): {
        "events_lookback": 2, "views_lookback": 2, "purchases_lookback": 0, "orders_lookback": 0,
        "monetary_lookback": 0.0, "avg_order_value": 0.0, "avg_basket_size": 0.0,
        "cart_rate": 0.0, "conversion_rate": 0.0, "return_rate": 0.0,
        "recency_days": 1.375, "days_since_last_purchase": 10.0, "tenure_days": 8.0,
        "distinct_categories_lookback": 2, "is_returning_buyer": 0.0,
    },
    # events 12, 13, 14: two purchases without an order id are two orders
    ("u3", _t(12)): {
        "events_lookback": 3, "purchases_lookback": 2, "orders_lookback": 2,
        "monetary_lookback": 25.0, "avg_order_value": 12.5, "avg_basket_size": 2.0,
        "conversion_rate": 2 / 3, "recency_days": 1.0, "days_since_last_purchase": 1.0,
        "tenure_days": 4 + 1 / 24, "is_returning_buyer": 1.0,
    },
    # the serving snapshot: one view, no category
    ("u4", _t(20, 12)): {
        "events_lookback": 1, "recency_days": 0.0, "tenure_days": 0.0,
        "distinct_categories_lookback": 0, "days_since_last_purchase": 10.0,
    },
}

EXPECTED_ITEM_FEATURES: dict[tuple[str, datetime], dict[str, float | None]] = {
    # window (Jan 2, Jan 12]: i2 <- 4 (u1 buys at 5), 10 (u2 views, no price),
    # 12 (u3 views at 5), 13 (u3 buys at 5)
    ("i2", _t(12)): {
        "item_views_lookback": 2, "item_carts_lookback": 0, "item_purchases_lookback": 2,
        "item_buyers_lookback": 2, "item_conversion_rate": 0.5,
        "item_avg_price": 5.0, "item_min_price": 5.0, "item_max_price": 5.0,
        "item_popularity_rank": 1,  # ties i1 on purchases and buyers, more views
    },
    ("i1", _t(12)): {  # 3 (u1 buys), 9 (u2 views), 14 (u3 buys)
        "item_views_lookback": 1, "item_purchases_lookback": 2, "item_buyers_lookback": 2,
        "item_conversion_rate": 2 / 3, "item_popularity_rank": 2,
    },
    ("i3", _t(12)): {  # 6 view, 7 purchase, 8 return, all at 20
        "item_views_lookback": 1, "item_purchases_lookback": 1, "item_conversion_rate": 0.5,
        "item_avg_price": 20.0, "item_popularity_rank": 3,
    },
}


# ---- writers ----------------------------------------------------------------------

def _rows(events: Iterable[RawEvent]) -> list[dict[str, Any]]:
    return [asdict(event) for event in events]


def _create_sql(qualified: str) -> str:
    columns = ", ".join(f"{name} {kind}" for name, kind in RAW_EVENTS_COLUMNS.items())
    return f"create table {qualified} ({columns})"


def write_raw_events_duckdb(
    path: Path, schema: str, events: Iterable[RawEvent], *, replace_table: bool = True
) -> int:
    """Write events to ``<schema>.raw_events`` in the DuckDB file at ``path``."""
    import duckdb

    rows = _rows(events)
    path.parent.mkdir(parents=True, exist_ok=True)
    qualified = f'"{schema}".raw_events'
    with duckdb.connect(str(path)) as conn:
        conn.execute(f'create schema if not exists "{schema}"')
        if replace_table:
            conn.execute(f"drop table if exists {qualified}")
        conn.execute(_create_sql(qualified).replace("create table", "create table if not exists"))
        if rows:
            names = list(RAW_EVENTS_COLUMNS)
            conn.executemany(
                f"insert into {qualified} ({', '.join(names)}) values ({', '.join('?' for _ in names)})",
                [[row[name] for name in names] for row in rows],
            )
    return len(rows)


def write_raw_events_postgres(
    url: str, schema: str, events: Iterable[RawEvent], *, replace_table: bool = True
) -> int:
    """Write events to ``<schema>.raw_events`` in PostgreSQL."""
    import sqlalchemy as sa

    rows = _rows(events)
    qualified = f'"{schema}".raw_events'
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f'create schema if not exists "{schema}"'))
            if replace_table:
                conn.execute(sa.text(f"drop table if exists {qualified}"))
            conn.execute(sa.text(_create_sql(qualified).replace("create table", "create table if not exists")))
            if rows:
                names = list(RAW_EVENTS_COLUMNS)
                conn.execute(
                    sa.text(
                        f"insert into {qualified} ({', '.join(names)}) "
                        f"values ({', '.join(':' + name for name in names)})"
                    ),
                    rows,
                )
    finally:
        engine.dispose()
    return len(rows)


def write_raw_events(
    settings: Settings, events: Iterable[RawEvent], *, replace_table: bool = True
) -> int:
    """Write events to the raw layer of the warehouse ``settings`` points at.

    Args:
        settings: backend, DuckDB path or PostgreSQL URL, and schema prefix.
        events: the rows, e.g. ``hand_events()``.
        replace_table: drop an existing raw_events first (False: append to it).

    Returns:
        The number of rows written.
    """
    schema = settings.warehouse.schema("raw")
    if settings.warehouse.backend == "postgres":
        return write_raw_events_postgres(
            settings.warehouse.postgres_url, schema, events, replace_table=replace_table
        )
    return write_raw_events_duckdb(
        settings.warehouse_path, schema, events, replace_table=replace_table
    )
