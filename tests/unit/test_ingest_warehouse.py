"""``shopflow.warehouse`` on DuckDB: the operations other parts rely on."""

from __future__ import annotations

import pandas as pd
import pytest

from shopflow.settings import Settings, load_settings
from shopflow.warehouse import WarehouseError, connect


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": ["007", None],
        "event_time": pd.to_datetime(["2024-01-01 10:00", "2024-01-02 11:30"]),
        "price": [1.5, None],
        "quantity": pd.array([2, None], dtype="Int32"),
    })


def test_create_append_query_roundtrip(settings: Settings) -> None:
    with connect(settings) as wh:
        assert wh.backend == "duckdb"
        table = wh.table("raw", "demo")
        assert table == "raw.demo"
        assert not wh.table_exists(table)
        wh.create_table(table, {"user_id": "text", "event_time": "timestamp",
                                "price": "double", "quantity": "integer"})
        assert wh.table_exists(table)
        # columns are matched by name, not position
        assert wh.append_df(table, _frame()[["quantity", "price", "event_time", "user_id"]]) == 2
        assert wh.append_df(table, _frame().iloc[:0]) == 0
        out = wh.query_df(f"select * from {table} where user_id = :user", {"user": "007"})
        assert out.loc[0, "user_id"] == "007"  # text id: leading zeros kept
        assert out.loc[0, "event_time"] == pd.Timestamp("2024-01-01 10:00")
        assert wh.scalar(f"select count(*) from {table} where user_id is null") == 1
        assert wh.scalar(f"select price from {table} where price > :p", {"p": 5}) is None
    assert settings.warehouse_path.is_file()


def test_transaction_rolls_back_on_error(settings: Settings) -> None:
    with connect(settings) as wh:
        table = wh.table("raw", "demo")
        wh.create_table(table, {"user_id": "text"})
        with pytest.raises(RuntimeError, match="boom"), wh.transaction():
            wh.append_df(table, pd.DataFrame({"user_id": ["a"]}))
            raise RuntimeError("boom")
        assert wh.scalar(f"select count(*) from {table}") == 0
        with wh.transaction():
            wh.append_df(table, pd.DataFrame({"user_id": ["b"]}))
        assert wh.scalar(f"select count(*) from {table}") == 1


def test_schema_prefix_and_identifier_checks(shopflow_home: object) -> None:
    settings = load_settings(warehouse={"schema_prefix": "p1_"})
    with connect(settings) as wh:
        assert wh.table("marts", "user_features") == "p1_marts.user_features"
        with pytest.raises(WarehouseError, match="invalid table name"):
            wh.table("raw", "x; drop table y")
        with pytest.raises(WarehouseError, match="invalid table name"):
            wh.append_df("raw.t; --", pd.DataFrame({"a": [1]}))


def test_data_survives_reconnecting(settings: Settings) -> None:
    with connect(settings) as wh:
        table = wh.table("staging", "keep")
        wh.create_table(table, {"id": "text"})
        wh.append_df(table, pd.DataFrame({"id": ["x"]}))
    with connect(settings) as wh:
        assert wh.query_df(f"select id from {table}")["id"].tolist() == ["x"]
