"""Mapping a source onto the event contract: headers, columns, event types, times, ids,
and the reason code every broken row gets."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pandas as pd

from shopflow.ingest import ingest_source
from shopflow.settings import load_settings
from shopflow.warehouse import connect

if TYPE_CHECKING:
    from pathlib import Path


def _ingest(tmp_path: Path, text: str, name: str = "events.csv", **source: Any
            ) -> tuple[Any, pd.DataFrame, pd.DataFrame]:
    path = tmp_path / name
    path.write_text(text)
    settings = load_settings(source={"path": str(path), **source})
    summary = ingest_source(settings, progress=False)
    with connect(settings) as wh:
        events = wh.query_df(f"select * from {wh.table('raw', 'raw_events')} order by source_row")
        quarantine = wh.query_df(f"select * from {wh.table('raw', 'quarantine')} order by source_row")
    assert summary.rows_read == summary.rows_ingested + summary.rows_quarantined
    assert summary.rows_ingested == len(events)
    assert summary.rows_quarantined == len(quarantine)
    return summary, events, quarantine


def test_header_override_and_event_type_mapping_with_epoch_seconds(tmp_path: Path) -> None:
    text = "\n".join([
        "1,100,7,pv,1511544070",
        "1,100,7,cart,1511544080",
        "2,101,7,buy,1511544090",
        "2,102,8,fav,1511544100",
        "3,103,8,click,1511544110",
    ]) + "\n"
    summary, events, quarantine = _ingest(
        tmp_path, text,
        header=["user_id", "item_id", "category_id", "behavior", "ts"],
        columns={"event_type": "behavior", "event_time": "ts"},
        event_types={"pv": "view", "cart": "cart", "fav": "view", "buy": "purchase"},
        time_unit="s",
    )
    assert events["event_type"].tolist() == ["view", "cart", "purchase", "view"]
    assert events["event_time"].iloc[0] == pd.Timestamp("2017-11-24 17:21:10")
    assert events["category_id"].tolist() == ["7", "7", "7", "8"]
    assert events["quantity"].tolist() == [1, 1, 1, 1]
    assert summary.quarantined_by_reason == {"unknown_event_type": 1}
    assert quarantine.loc[0, "source_row"] == 5
    assert quarantine.loc[0, "event_type"] == "click"


def test_epoch_milliseconds(tmp_path: Path) -> None:
    text = "user_id,item_id,event_time\nu1,i1,1700000000123\nu2,i2,not-a-number\n"
    summary, events, quarantine = _ingest(tmp_path, text, time_unit="ms")
    assert events.loc[0, "event_time"] == pd.Timestamp("2023-11-14 22:13:20.123")
    assert summary.quarantined_by_reason == {"unparseable_event_time": 1}


def test_column_mapping_keeps_ids_as_text(tmp_path: Path) -> None:
    text = (
        "InvoiceNo,StockCode,Quantity,InvoiceDate,UnitPrice,CustomerID\n"
        "536365,00123,6,2010-12-01 08:26:00,2.55,17850.0\n"
        "536366,85123A,2,2010-12-01 08:28:00,0,017850\n"
        "C536379,00123,-1,2010-12-01 09:41:00,27.50,17850.0\n"
    )
    _, events, _ = _ingest(
        tmp_path, text,
        columns={"user_id": "CustomerID", "item_id": "StockCode", "event_time": "InvoiceDate",
                 "price": "UnitPrice", "quantity": "Quantity", "order_id": "InvoiceNo"},
    )
    assert events["user_id"].tolist() == ["17850", "017850", "17850"]
    assert events["item_id"].tolist() == ["00123", "85123A", "00123"]
    assert events["order_id"].tolist() == ["536365", "536366", "C536379"]
    # no event_type column: purchases, and a negative quantity is a return
    assert events["event_type"].tolist() == ["purchase", "purchase", "return"]
    assert events["quantity"].tolist() == [6, 2, -1]
    assert events["price"].tolist() == [2.55, 0.0, 27.5]  # zero price is kept


def test_string_times_with_format_and_timezone(tmp_path: Path) -> None:
    text = "user_id,item_id,event_time\nu1,i1,01/07/2024 12:30\nu1,i2,15/01/2024 12:30\nu1,i3,31/02/2024 10:00\n"
    summary, events, _ = _ingest(tmp_path, text, time_format="%d/%m/%Y %H:%M",
                                 timezone="Europe/London")
    # London is UTC+1 in July, UTC in January; 31 February does not exist
    assert events["event_time"].tolist() == [pd.Timestamp("2024-07-01 11:30"),
                                              pd.Timestamp("2024-01-15 12:30")]
    assert summary.quarantined_by_reason == {"unparseable_event_time": 1}


def test_iso_times_with_offsets_and_local_naive_times(tmp_path: Path) -> None:
    text = (
        "user_id,item_id,event_time\n"
        "u1,i1,2024-06-01T12:00:00+02:00\n"
        "u1,i2,2024-06-01T12:00:00Z\n"
        "u1,i3,2024-06-01 12:00:00\n"
        "u1,i4,2024-06-01\n"
    )
    _, events, _ = _ingest(tmp_path, text, timezone="America/New_York")
    assert events["event_time"].tolist() == [
        pd.Timestamp("2024-06-01 10:00"), pd.Timestamp("2024-06-01 12:00"),
        pd.Timestamp("2024-06-01 16:00"), pd.Timestamp("2024-06-01 04:00"),
    ]


def test_every_broken_row_gets_a_reason_and_keeps_its_text(tmp_path: Path) -> None:
    text = (
        "user_id,item_id,event_type,event_time,price,quantity\n"
        "u1,i1,view,2024-01-01 10:00:00,1.5,\n"         # 1 ok (quantity defaults to 1)
        ",i1,view,2024-01-01 10:00:00,1.5,1\n"           # 2 missing_user_id
        "u1,,view,2024-01-01 10:00:00,1.5,1\n"           # 3 missing_item_id
        "u1,i1,view,yesterday,1.5,1\n"                   # 4 unparseable_event_time
        "u1,i1,wishlist,2024-01-01 10:00:00,1.5,1\n"     # 5 unknown_event_type
        "u1,i1,purchase,2024-01-01 10:00:00,-3,1\n"      # 6 invalid_price
        "u1,i1,purchase,2024-01-01 10:00:00,abc,1\n"     # 7 invalid_price
        "u1,i1,purchase,2024-01-01 10:00:00,2,1.5\n"     # 8 invalid_quantity
        "u1,i1,purchase,2024-01-01 10:00:00,2,0\n"       # 9 invalid_quantity
        "u1,i1,PURCHASE,2024-01-01 10:00:00,2,-2\n"      # 10 ok: a return
        "  u2 ,i1,Return,2024-01-01 10:00:00,,3\n"       # 11 ok: return, quantity -3
    )
    summary, events, quarantine = _ingest(tmp_path, text)
    assert summary.rows_read == 11
    assert events["source_row"].tolist() == [1, 10, 11]
    assert events["event_type"].tolist() == ["view", "return", "return"]
    assert events["quantity"].tolist() == [1, -2, -3]
    assert events["user_id"].tolist() == ["u1", "u1", "u2"]
    assert pd.isna(events.loc[2, "price"])
    assert dict(zip(quarantine["source_row"], quarantine["reason"], strict=True)) == {
        2: "missing_user_id", 3: "missing_item_id", 4: "unparseable_event_time",
        5: "unknown_event_type", 6: "invalid_price", 7: "invalid_price",
        8: "invalid_quantity", 9: "invalid_quantity",
    }
    row7 = quarantine.set_index("source_row").loc[7]
    assert row7["price"] == "abc"
    assert json.loads(row7["raw_record"])["price"] == "abc"
    assert summary.quarantined_by_reason == {
        "invalid_price": 2, "invalid_quantity": 2, "missing_item_id": 1,
        "missing_user_id": 1, "unknown_event_type": 1, "unparseable_event_time": 1,
    }


def test_unmapped_canonical_names_match_case_insensitively(tmp_path: Path) -> None:
    text = "User_ID,ITEM_ID,Event_Time,Category_Id\nu1,i1,2024-01-01 00:00:00,c9\n"
    _, events, _ = _ingest(tmp_path, text)
    assert events.loc[0, ["user_id", "item_id", "category_id"]].tolist() == ["u1", "i1", "c9"]


def test_delimiter_option(tmp_path: Path) -> None:
    text = "user_id;item_id;event_time;price\nu1;i1;2024-01-01 00:00:00;1.25\n"
    _, events, _ = _ingest(tmp_path, text, delimiter=";")
    assert events.loc[0, "price"] == 1.25


def test_chunking_keeps_row_numbers(tmp_path: Path) -> None:
    lines = [f"u{i % 7},i{i % 5},2024-01-01 00:{i % 60:02d}:00" for i in range(1, 101)]
    lines[49] = ",i1,2024-01-01 00:00:00"  # row 50 has no user
    text = "user_id,item_id,event_time\n" + "\n".join(lines) + "\n"
    summary, events, quarantine = _ingest(tmp_path, text, chunk_rows=7)
    assert summary.rows_read == 100
    assert events["source_row"].tolist() == [r for r in range(1, 101) if r != 50]
    assert quarantine["source_row"].tolist() == [50]


def test_excel_style_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(b"\xef\xbb\xbfuser_id,item_id,event_time\r\nu1,i1,2024-01-01 00:00:00\r\n")
    settings = load_settings(source={"path": str(path)})
    summary = ingest_source(settings, progress=False)
    assert (summary.rows_read, summary.rows_ingested) == (1, 1)


def test_malformed_rows_across_chunks_keep_exact_row_numbers(tmp_path: Path) -> None:
    lines = [f"u{i},i{i},2024-01-01 00:00:00" for i in range(1, 31)]
    lines[4] = "u5,i5,2024-01-01 00:00:00,extra"   # row 5
    lines[16] = "u17"                               # row 17
    text = "user_id,item_id,event_time\n" + "\n".join(lines) + "\n"
    summary, events, quarantine = _ingest(tmp_path, text, chunk_rows=4)
    assert (summary.rows_read, summary.rows_ingested, summary.rows_quarantined) == (30, 28, 2)
    assert quarantine["source_row"].tolist() == [5, 17]
    assert set(quarantine["reason"]) == {"malformed_row"}
    assert events["source_row"].tolist() == [r for r in range(1, 31) if r not in (5, 17)]
    # row numbers match the content (u<n> sits on row n)
    assert (events["user_id"] == "u" + events["source_row"].astype(str)).all()


def test_tsv_files_default_to_tabs(tmp_path: Path) -> None:
    _, events, _ = _ingest(tmp_path, "user_id\titem_id\tevent_time\nu1\ti,1\t2024-01-01\n",
                           name="events.tsv")
    assert events.loc[0, "item_id"] == "i,1"
