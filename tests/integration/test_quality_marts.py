"""The staging and marts gates on real DuckDB tables with real GX.

The tables are built from small frames with the columns of ARCHITECTURE.md (what dbt
builds), consistent with the marts' invariants; each bad build breaks one of them. A
blocked build is recorded and nothing is published.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from shopflow.features.schema import FAMILY_FEATURES
from shopflow.quality import GateFailed, run_gate
from shopflow.quality.metrics import load_baseline
from shopflow.warehouse import connect

if TYPE_CHECKING:
    from shopflow.settings import Settings

pytestmark = pytest.mark.integration

USERS, ITEMS = 300, 80
CUTOFFS = [datetime(2026, 9, 1) + timedelta(days=7 * k) for k in range(3)]


def user_features(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for cutoff in CUTOFFS:
        for u in range(USERS):
            views, carts, buys, returns = (rng.poisson(6), rng.poisson(2), rng.poisson(1),
                                           rng.binomial(1, 0.05))
            lookback = views + carts + buys + returns + 1
            e30 = rng.integers(1, lookback + 1)
            e7 = rng.integers(0, e30 + 1)
            p30 = rng.integers(0, buys + 1)
            orders = buys
            since_purchase = float(rng.uniform(0, 90)) if buys else None
            rows.append({
                "user_id": f"u{u}", "cutoff_time": cutoff,
                "recency_days": float(rng.uniform(0, 80)),
                "tenure_days": float(rng.uniform(90, 400)),
                "days_since_first_purchase": None if since_purchase is None else since_purchase + 10,
                "days_since_last_purchase": since_purchase,
                "purchases_lifetime": buys + 1, "orders_lifetime": orders + 1,
                "purchase_days_lifetime": orders + 1, "monetary_lifetime": float((buys + 1) * 20),
                "events_7d": e7, "events_30d": e30, "events_90d": lookback,
                "purchases_7d": min(p30, e7), "purchases_30d": p30, "purchases_90d": buys,
                "monetary_7d": float(min(p30, e7) * 20), "monetary_30d": float(p30 * 20),
                "monetary_90d": float(buys * 20),
                "views_lookback": views, "carts_lookback": carts,
                "returns_lookback": returns, "orders_lookback": orders,
                "avg_order_value": 20.0 if orders else 0.0,
                "avg_basket_size": 1.0 if orders else 0.0,
                "cart_rate": carts / (views + carts) if views + carts else 0.0,
                "conversion_rate": buys / (views + carts + buys) if views + carts + buys else 0.0,
                "return_rate": returns / (buys + returns) if buys + returns else 0.0,
                "distinct_items_lookback": rng.integers(1, 10),
                "distinct_categories_lookback": rng.integers(1, 4),
                "active_days_lookback": rng.integers(1, 20),
                "is_returning_buyer": float(orders >= 2),
            })
    frame = pd.DataFrame(rows)
    counts = [c for c in frame.columns if c.endswith(("_7d", "_30d", "_90d", "_lookback", "_lifetime"))
              and not c.startswith("monetary")]
    frame[counts] = frame[counts].astype("float64")
    # the feature families: values inside each kind's range, nullable ones sometimes null
    family_rng = np.random.default_rng([seed, 19])
    for feature in FAMILY_FEATURES:
        low, high = feature.value_range
        values = family_rng.uniform(0.0 if low is None else low, 5.0 if high is None else high,
                                    len(frame))
        if feature.nullable:
            values[family_rng.uniform(size=len(frame)) < 0.2] = np.nan
        frame[feature.name] = values
    return frame


def item_features(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for cutoff in CUTOFFS:
        buys = rng.poisson(5, ITEMS)
        order = np.argsort(-buys, kind="stable")
        ranks = np.empty(ITEMS, dtype=int)
        ranks[order] = np.arange(1, ITEMS + 1)
        for i in range(ITEMS):
            low = float(rng.uniform(1, 10))
            rows.append({
                "item_id": f"sku-{i}", "cutoff_time": cutoff,
                "item_views_lookback": float(buys[i] * 5), "item_carts_lookback": float(buys[i] * 2),
                "item_purchases_lookback": float(buys[i]), "item_buyers_lookback": float(buys[i]),
                "item_conversion_rate": buys[i] / (buys[i] * 8) if buys[i] else 0.0,
                "item_avg_price": low * 1.5, "item_min_price": low, "item_max_price": low * 2,
                "item_popularity_rank": float(ranks[i]),
            })
    return pd.DataFrame(rows)


def purchase_labels(rate: float = 0.2, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [
        {"user_id": f"u{u}", "cutoff_time": cutoff, "label": int(rng.random() < rate),
         "label_window_end": cutoff + timedelta(days=30)}
        for cutoff in CUTOFFS[:-1]  # the last one is the serving snapshot: no label
        for u in range(USERS)
    ]
    frame = pd.DataFrame(rows)
    frame["label"] = frame["label"].astype("int32")
    return frame


def staging_events(rows: int = 1200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC).replace(tzinfo=None)
    frame = pd.DataFrame({
        "user_id": [f"u{i}" for i in rng.integers(0, 100, rows)],
        "item_id": [f"sku-{i}" for i in rng.integers(0, 80, rows)],
        "order_id": [f"o{i}" for i in rng.integers(0, 400, rows)],
        "category_id": [f"c{i}" for i in rng.integers(0, 8, rows)],
        "event_type": rng.choice(["view", "cart", "purchase"], rows, p=[0.6, 0.25, 0.15]),
        "price": np.round(rng.lognormal(2, 0.5, rows), 2),
        "quantity": np.ones(rows, dtype="int32"),
        "event_time": now - pd.to_timedelta(rng.integers(60, 30 * 86400, rows), "s"),
        "batch_id": "b1", "source_file": "/data/b1.csv",
        "source_row": np.arange(1, rows + 1, dtype="int64"), "ingested_at": now,
    })
    frame.insert(0, "event_id", [
        hashlib.md5(f"{seed}-{i}".encode()).hexdigest() for i in range(rows)])
    return frame


def write_tables(settings: Settings, layer: str, tables: dict[str, pd.DataFrame]) -> None:
    """(Re)build tables as dbt would: replace each table in the layer's schema."""
    with connect(settings) as wh:
        wh.ensure_schema(layer)
        for name, frame in tables.items():
            wh.connection.register("frame", frame)
            wh.execute(f"create or replace table {layer}.{name} as select * from frame")
            wh.connection.unregister("frame")


def good_marts() -> dict[str, pd.DataFrame]:
    return {"user_features": user_features(), "item_features": item_features(),
            "purchase_labels": purchase_labels()}


def test_clean_marts_pass_and_leave_a_label_rate_baseline(settings: Settings) -> None:
    write_tables(settings, "marts", good_marts())
    result = run_gate(settings, "marts")
    assert result.success, [c.describe() for c in result.failed_errors]
    tables = {c.table for c in result.checks}
    assert {"marts.user_features", "marts.item_features", "marts.purchase_labels"} <= tables
    baseline = load_baseline(settings, "marts")
    assert baseline is not None
    assert baseline.label_rate == pytest.approx(purchase_labels()["label"].mean())
    assert baseline.rows["user_features"] == USERS * len(CUTOFFS)


def test_constant_and_duplicate_windows_warn_but_pass(settings: Settings) -> None:
    marts = good_marts()
    users = marts["user_features"]
    users["events_90d"] = users["events_30d"]  # a window that adds nothing: one column twice
    users["returns_lookback"] = 0.0  # a constant feature
    write_tables(settings, "marts", marts)
    result = run_gate(settings, "marts")
    assert result.success, [c.describe() for c in result.failed_errors]
    warned = {(c.table, c.check) for c in result.failed_warnings}
    assert ("marts.user_features", "events_90d differs from events_30d") in warned
    assert ("marts.user_features", "returns_lookback not constant") in warned
    assert ("marts.user_features", "events_30d differs from events_7d") not in warned


def test_label_rate_jump_to_80_percent_is_blocked_and_recorded(settings: Settings) -> None:
    write_tables(settings, "marts", good_marts())
    run_gate(settings, "marts")
    published = settings.feast_dir / "data"  # publish_marts would write here; it must not

    write_tables(settings, "marts", {"purchase_labels": purchase_labels(rate=0.8, seed=1)})
    with pytest.raises(GateFailed) as caught:
        run_gate(settings, "marts")

    message = str(caught.value)
    assert message.splitlines()[0].startswith("quality gate 'marts' FAILED: 2 error checks")
    assert "marts.purchase_labels: label rate in [0.001, 0.6]: observed 0.8" in message
    assert "label rate within 0.2 of last good" in message
    folder = caught.value.result.quarantine_path
    assert folder is not None and folder.parent == settings.quarantine_dir
    assert json.loads((folder / "report.json").read_text())["success"] is False
    assert "left untouched" in (folder / "README.md").read_text()
    blocked = (settings.reports_dir / "quality" / "blocked.jsonl").read_text().splitlines()
    assert json.loads(blocked[-1])["layer"] == "marts"
    assert not published.exists()
    # the baseline still describes the last good build
    assert load_baseline(settings, "marts").label_rate == pytest.approx(
        purchase_labels()["label"].mean())

    # dbt rebuilds the fixed marts; the gate passes with no cleanup
    write_tables(settings, "marts", {"purchase_labels": purchase_labels(seed=2)})
    assert run_gate(settings, "marts").success


def test_broken_mart_invariants_are_blocked(settings: Settings) -> None:
    users = user_features()
    users = pd.concat([users, users.head(5)], ignore_index=True)  # duplicate keys
    users.loc[10, "conversion_rate"] = 1.7
    users.loc[11, "events_7d"] = users.loc[11, "events_30d"] + 3
    items = item_features()
    items.loc[0, "item_min_price"] = items.loc[0, "item_max_price"] + 1
    write_tables(settings, "marts", {"user_features": users, "item_features": items,
                                     "purchase_labels": purchase_labels()})
    with pytest.raises(GateFailed) as caught:
        run_gate(settings, "marts")
    failed = {(c.table, c.check) for c in caught.value.result.failed_errors}
    assert failed == {
        ("marts.user_features", "one row per (user_id, cutoff_time)"),
        ("marts.user_features", "conversion_rate in [0, 1]"),
        ("marts.user_features", "events_30d >= events_7d"),
        ("marts.item_features", "item_max_price >= item_min_price"),
    }


def test_staging_passes_clean_and_blocks_duplicates_and_shrinking(settings: Settings) -> None:
    clean = staging_events()
    write_tables(settings, "staging", {"stg_shop__events": clean})
    assert run_gate(settings, "staging").success

    broken = pd.concat([clean.head(400), clean.head(40)], ignore_index=True)
    write_tables(settings, "staging", {"stg_shop__events": broken})
    with pytest.raises(GateFailed) as caught:
        run_gate(settings, "staging")
    message = str(caught.value)
    assert message.startswith("quality gate 'staging' FAILED")
    assert "event_id unique (duplicates removed): observed 80 of 440 duplicated rows" in message
    assert "row count not down >50% vs last good batch: observed 440" in message


def test_missing_mart_table_is_a_clear_error(settings: Settings) -> None:
    from shopflow.quality import QualityError

    write_tables(settings, "marts", {"user_features": user_features()})
    with pytest.raises(QualityError, match="marts.item_features does not exist"):
        run_gate(settings, "marts")


#: stg_shop__events in the warehouse's portable types (what dbt builds on PostgreSQL).
STAGING_TYPES = {
    "event_id": "text", "user_id": "text", "item_id": "text", "order_id": "text",
    "category_id": "text", "event_type": "text", "price": "double", "quantity": "integer",
    "event_time": "timestamp", "batch_id": "text", "source_file": "text",
    "source_row": "bigint", "ingested_at": "timestamp",
}


@pytest.mark.postgres
def test_staging_gate_runs_in_a_postgres_warehouse(
    postgres_url: str, postgres_schema_prefix: str, shopflow_home: object
) -> None:
    """The staging checks run as SQL in PostgreSQL: same verdicts and messages as on DuckDB."""
    from shopflow.settings import load_settings

    settings = load_settings(warehouse={"backend": "postgres", "postgres_url": postgres_url,
                                        "schema_prefix": postgres_schema_prefix})
    settings.ensure_dirs()
    clean = staging_events()

    def rebuild(frame: pd.DataFrame) -> None:
        with connect(settings) as wh:
            table = wh.table("staging", "stg_shop__events")
            wh.ensure_schema(wh.schema("staging"))
            wh.execute(f"drop table if exists {table}")
            wh.create_table(table, STAGING_TYPES)
            wh.append_df(table, frame)

    rebuild(clean)
    result = run_gate(settings, "staging")
    assert result.success and result.rows == {"stg_shop__events": len(clean)}
    baseline = load_baseline(settings, "staging")
    assert baseline is not None and set(baseline.histograms) == {"price", "events_per_user_day"}

    rebuild(pd.concat([clean.head(400), clean.head(40)], ignore_index=True))
    with pytest.raises(GateFailed) as caught:
        run_gate(settings, "staging")
    message = str(caught.value)
    assert "event_id unique (duplicates removed): observed 80 of 440 duplicated rows" in message
    assert "row count not down >50% vs last good batch: observed 440" in message
