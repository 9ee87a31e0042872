"""Ingestion and the warehouse abstraction on the real PostgreSQL server."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import pytest

from shopflow.ingest import ingest_source
from shopflow.settings import Settings, load_settings
from shopflow.warehouse import connect

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

CSV = (
    "CustomerID,StockCode,InvoiceDate,UnitPrice,Quantity,InvoiceNo\n"
    "17850.0,00123,2010-12-01 08:26:00,2.55,6,536365\n"
    ",85123A,2010-12-01 08:26:00,2.55,6,536365\n"
    "17850.0,00123,2010-12-01 09:41:00,2.55,-6,C536379\n"
    "12583.0,22728,2010-12-01 08:45:00,-3.75,24,536370\n"
    "12583.0,22728,later,3.75,24,536370\n"
)


def _settings(postgres_url: str, prefix: str, path: Path) -> Settings:
    return load_settings(
        warehouse={"backend": "postgres", "postgres_url": postgres_url, "schema_prefix": prefix},
        source={"path": str(path), "columns": {
            "user_id": "CustomerID", "item_id": "StockCode", "event_time": "InvoiceDate",
            "price": "UnitPrice", "quantity": "Quantity", "order_id": "InvoiceNo"}},
    )


def test_ingest_into_postgres_is_exact_and_idempotent(
    tmp_path: Path, postgres_url: str, postgres_schema_prefix: str
) -> None:
    path = tmp_path / "retail.csv"
    path.write_text(CSV)
    settings = _settings(postgres_url, postgres_schema_prefix, path)
    summary = ingest_source(settings, progress=False)
    assert (summary.rows_read, summary.rows_ingested, summary.rows_quarantined) == (5, 2, 3)
    assert summary.quarantined_by_reason == {
        "invalid_price": 1, "missing_user_id": 1, "unparseable_event_time": 1,
    }
    with connect(settings) as wh:
        assert wh.backend == "postgres"
        events = wh.query_df(
            f"select user_id, item_id, event_type, event_time, quantity, order_id, batch_id "
            f"from {wh.table('raw', 'raw_events')} order by source_row"
        )
        reasons = wh.query_df(
            f"select source_row, reason, event_time from {wh.table('raw', 'quarantine')} "
            f"order by source_row"
        )
    assert events["user_id"].tolist() == ["17850", "17850"]
    assert events["item_id"].tolist() == ["00123", "00123"]
    assert events["event_type"].tolist() == ["purchase", "return"]
    assert events["quantity"].tolist() == [6, -6]
    assert pd.Timestamp(events["event_time"].iloc[0]) == pd.Timestamp("2010-12-01 08:26:00")
    assert set(events["batch_id"]) == set(summary.batch_ids)
    assert reasons["source_row"].tolist() == [2, 4, 5]
    assert reasons["event_time"].iloc[2] == "later"

    again = ingest_source(settings, progress=False)
    assert again.batch_ids == [] and again.skipped_files == [str(path.resolve())]
    with connect(settings) as wh:
        assert wh.scalar(f"select count(*) from {wh.table('raw', 'raw_events')}") == 2
        assert wh.scalar(f"select count(*) from {wh.table('raw', 'ingested_files')}") == 1


def test_postgres_warehouse_operations(postgres_url: str, postgres_schema_prefix: str) -> None:
    settings = load_settings(warehouse={"backend": "postgres", "postgres_url": postgres_url,
                                        "schema_prefix": postgres_schema_prefix})
    with connect(settings) as wh:
        table = wh.table("staging", "demo")
        assert not wh.table_exists(table)
        wh.create_table(table, {"id": "text", "at": "timestamp", "x": "double", "n": "integer"})
        assert wh.table_exists(table)
        frame = pd.DataFrame({
            "n": pd.array([1, None], dtype="Int32"),
            "id": ["007", 'with "quotes", commas\nand a newline'],
            "at": pd.to_datetime(["2024-01-01 10:00:00.123456", None]),
            "x": [1.25, None],
        })
        assert wh.append_df(table, frame) == 2
        out = wh.query_df(f"select * from {table} order by n nulls last")
        assert out["id"].tolist() == frame["id"].tolist()
        assert pd.Timestamp(out.loc[0, "at"]) == pd.Timestamp("2024-01-01 10:00:00.123456")
        assert out["at"].isna().tolist() == [False, True]
        assert wh.scalar(f"select count(*) from {table} where id = :id and x > :x",
                         {"id": "007", "x": 1}) == 1
        # a literal % is written once, with or without parameters
        assert wh.scalar(f"select count(*) from {table} where id like '%quotes%'") == 1
        assert wh.scalar(f"select count(*) from {table} where id like '%quotes%' and id <> :o",
                         {"o": "007"}) == 1
        assert wh.scalar(f"select count(*) from {table} where id like '%%'") == 2
        with pytest.raises(RuntimeError), wh.transaction():
            wh.append_df(table, frame)
            raise RuntimeError("roll back")
        assert wh.scalar(f"select count(*) from {table}") == 2


def test_a_failing_file_rolls_back_on_postgres(
    tmp_path: Path, postgres_url: str, postgres_schema_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import shopflow.ingest.loader as loader
    from shopflow.ingest import IngestError

    path = tmp_path / "retail.csv"
    path.write_text(CSV.splitlines()[0] + "\n" + "\n".join(CSV.splitlines()[1:] * 10) + "\n")
    settings = _settings(postgres_url, postgres_schema_prefix, path)
    settings.source.chunk_rows = 10
    real = loader.convert_chunk
    calls = {"n": 0}

    def failing(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("simulated failure in chunk 3")
        return real(*args, **kwargs)

    monkeypatch.setattr(loader, "convert_chunk", failing)
    with pytest.raises(IngestError, match="simulated failure"):
        ingest_source(settings, progress=False)
    with connect(settings) as wh:
        for name in ("raw_events", "quarantine", "ingested_files"):
            assert wh.scalar(f"select count(*) from {wh.table('raw', name)}") == 0, name
