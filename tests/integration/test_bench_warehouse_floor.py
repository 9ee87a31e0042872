"""The warehouse benchmark's floor on real DuckDB and PostgreSQL, and its schema cleanup."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import psycopg2
from benchmarks.bench_warehouse import _database_size, _drop_schemas, floor_step

from shopflow.settings import load_settings
from shopflow.warehouse import connect

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def _events_file(tmp_path: Path, rows: int = 500) -> Path:
    """A small events file with the generator's columns and types."""
    frame = pd.DataFrame({
        "user_id": [f"u{i % 37}" for i in range(rows)],
        "item_id": [f"i{i % 11}" for i in range(rows)],
        "event_type": ["view"] * rows,
        "event_time": pd.date_range("2026-01-01", periods=rows, freq="min", tz="UTC"),
        "price": [1.5] * rows,
        "quantity": pd.array([2] * rows, dtype="int32"),
        "order_id": [None] * rows,
        "category_id": ["c1"] * rows,
    })
    path = tmp_path / "events.parquet"
    frame.to_parquet(path)
    return path


def test_floor_load_puts_every_row_in_duckdb_and_the_scan_drops_it(tmp_path: Path) -> None:
    events = _events_file(tmp_path)
    floor_step("floor_load", events)
    settings = load_settings()
    with connect(settings) as wh:
        table = wh.table("raw", "floor_events")
        assert wh.scalar(f"select count(*) from {table}") == 500
    floor_step("floor_scan", events)
    with connect(settings) as wh:
        assert not wh.table_exists(table)


def test_floor_on_postgres_stays_in_its_prefix_and_is_dropped(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    prefix = "benchtest_floor_"
    monkeypatch.setenv("SHOPFLOW_WAREHOUSE__BACKEND", "postgres")
    monkeypatch.setenv("SHOPFLOW_WAREHOUSE__POSTGRES_URL", postgres_url)
    monkeypatch.setenv("SHOPFLOW_WAREHOUSE__SCHEMA_PREFIX", prefix)
    events = _events_file(tmp_path)
    try:
        floor_step("floor_load", events)
        with connect(load_settings()) as wh:
            assert wh.scalar(f"select count(*) from {prefix}raw.floor_events") == 500
        size = _database_size("postgres", tmp_path, postgres_url, prefix)
        assert size is not None and size > 0
    finally:
        _drop_schemas(postgres_url, prefix)
    with psycopg2.connect(postgres_url) as con, con.cursor() as cur:
        cur.execute("select count(*) from pg_namespace where nspname like %s", (prefix + "%",))
        row = cur.fetchone()
    assert row is not None and row[0] == 0
