"""Ingesting files into the DuckDB warehouse: formats, idempotency, accounting, globs,
relative paths, the synthetic default, and a clear error for every kind of broken file."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from shopflow.cli import cli
from shopflow.ingest import IngestError, ingest_source
from shopflow.ingest.loader import mark_batch
from shopflow.settings import Settings, load_settings
from shopflow.warehouse import connect

CSV = (
    "user_id,item_id,event_type,event_time,price,quantity,order_id,category_id\n"
    "0042,i1,view,2024-01-01T10:00:00Z,9.99,1,,c1\n"
    "0042,i1,cart,2024-01-01T10:01:00Z,9.99,2,,c1\n"
    "0042,i1,purchase,2024-01-01T10:02:00Z,9.99,2,o1,c1\n"
    ",i2,view,2024-01-01T11:00:00Z,5.00,1,,c2\n"
    "0043,i2,purchase,2024-01-02T09:00:00Z,-5.00,1,o2,c2\n"
    "0043,i2,return,2024-01-09T09:00:00Z,5.00,-1,o2,c2\n"
)


def _settings(path: Path | str | None = None, **source: object) -> Settings:
    return load_settings(source={"path": str(path) if path else None, **source})


def _counts(settings: Settings) -> tuple[int, int, int]:
    with connect(settings) as wh:
        return tuple(  # type: ignore[return-value]
            int(wh.scalar(f"select count(*) from {wh.table('raw', name)}"))
            for name in ("raw_events", "quarantine", "ingested_files")
        )


def _events(settings: Settings) -> pd.DataFrame:
    with connect(settings) as wh:
        return wh.query_df(
            f"select user_id, item_id, event_type, event_time, price, quantity, order_id, "
            f"category_id from {wh.table('raw', 'raw_events')} order by source_row"
        )


def _write(tmp_path: Path, name: str, text: str = CSV) -> Path:
    path = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    elif name.endswith(".parquet"):
        from io import StringIO

        frame = pd.read_csv(StringIO(text), dtype=str, keep_default_na=False)
        table = pa.Table.from_pandas(frame.replace("", None), preserve_index=False)
        table = table.set_column(
            table.schema.get_field_index("event_time"), "event_time",
            pa.array(pd.to_datetime(frame["event_time"], utc=True)),
        )
        table = table.set_column(
            table.schema.get_field_index("price"), "price",
            pa.array(pd.to_numeric(frame["price"]), pa.float64()),
        )
        pq.write_table(table, path)
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["events.csv", "events.csv.gz", "events.parquet"])
def test_every_format_gives_the_same_rows(tmp_path: Path, name: str) -> None:
    settings = _settings(_write(tmp_path, name))
    summary = ingest_source(settings, progress=False)
    assert (summary.rows_read, summary.rows_ingested, summary.rows_quarantined) == (6, 4, 2)
    assert summary.quarantined_by_reason == {"invalid_price": 1, "missing_user_id": 1}
    events = _events(settings)
    assert events["user_id"].tolist() == ["0042", "0042", "0042", "0043"]
    assert events["event_type"].tolist() == ["view", "cart", "purchase", "return"]
    assert events["event_time"].iloc[0] == pd.Timestamp("2024-01-01 10:00:00")
    assert events["quantity"].tolist() == [1, 2, 2, -1]
    assert events["order_id"].iloc[0] is None or pd.isna(events["order_id"].iloc[0])
    assert events["order_id"].iloc[2] == "o1"


def test_the_same_file_twice_adds_no_rows(tmp_path: Path) -> None:
    path = _write(tmp_path, "events.csv")
    settings = _settings(path)
    first = ingest_source(settings, progress=False)
    assert len(first.batch_ids) == 1 and not first.skipped_files
    counts = _counts(settings)
    assert counts == (4, 2, 1)

    second = ingest_source(settings, progress=False)
    assert second.batch_ids == []
    assert second.skipped_files == [str(path.resolve())]
    assert second.rows_read == 0
    assert _counts(settings) == counts

    # the same bytes under another name are the same batch
    copy = tmp_path / "copy.csv"
    copy.write_bytes(path.read_bytes())
    assert ingest_source(settings, path=str(copy), progress=False).skipped_files == [str(copy)]

    # once the quality gate quarantines the batch, the file may come in again
    with connect(settings) as wh:
        mark_batch(wh, first.batch_ids[0], "quarantined")
        statuses = wh.query_df(f"select status from {wh.table('raw', 'ingested_files')}")
    assert statuses["status"].tolist() == ["quarantined"]
    third = ingest_source(settings, progress=False)
    assert len(third.batch_ids) == 1 and third.batch_ids != first.batch_ids
    assert _counts(settings) == (8, 4, 2)


def test_ingested_files_records_each_batch(tmp_path: Path) -> None:
    path = _write(tmp_path, "events.csv.gz")
    settings = _settings(path)
    summary = ingest_source(settings, progress=False)
    with connect(settings) as wh:
        row = wh.query_df(f"select * from {wh.table('raw', 'ingested_files')}").iloc[0]
        batches = wh.query_df(f"select distinct batch_id, source_file from {wh.table('raw', 'raw_events')}")
    assert row["batch_id"] == summary.batch_ids[0]
    assert row["status"] == "ingested"
    assert len(row["fingerprint"]) == 64
    assert (row["rows_read"], row["rows_ingested"], row["rows_quarantined"]) == (6, 4, 2)
    assert batches.values.tolist() == [[summary.batch_ids[0], str(path.resolve())]]


def test_glob_ingests_each_file_as_its_own_batch(tmp_path: Path) -> None:
    _write(tmp_path, "day1.csv")
    _write(tmp_path, "day2.csv", CSV.replace("2024-01-0", "2024-02-0"))
    (tmp_path / "notes.txt.bak").write_text("ignored: does not match")
    summary = ingest_source(_settings(tmp_path / "day*.csv"), progress=False)
    assert [Path(f.source_file).name for f in summary.files] == ["day1.csv", "day2.csv"]
    assert len(set(summary.batch_ids)) == 2
    assert summary.rows_read == 12 and summary.rows_ingested == 8


def test_relative_paths_resolve_against_the_config_file_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configs = tmp_path / "configs"
    data = tmp_path / "data"
    configs.mkdir()
    data.mkdir()
    _write(data, "events.csv")
    config = configs / "run.yaml"
    config.write_text("source:\n  path: ../data/events.csv\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    summary = ingest_source(load_settings(config), progress=False)
    assert summary.files[0].source_file == str((data / "events.csv").resolve())

    # not next to the config: the current directory is tried next
    config.write_text("source:\n  path: local.csv\n")
    _write(elsewhere, "local.csv", CSV.replace("i1", "i9"))
    summary = ingest_source(load_settings(config), progress=False)
    assert summary.files[0].source_file == str((elsewhere / "local.csv").resolve())


def test_no_source_path_ingests_the_synthetic_generator(tmp_path: Path) -> None:
    settings = load_settings(generator={"events": 3_000, "days": 20, "seed": 1})
    settings.ensure_dirs()
    first = ingest_source(settings, progress=False)
    assert first.rows_read == 3_000
    assert first.rows_read == first.rows_ingested + first.rows_quarantined
    generated = list((settings.data_dir / "synthetic").glob("*.parquet"))
    assert len(generated) == 1
    modified = generated[0].stat().st_mtime_ns
    second = ingest_source(settings, progress=False)
    assert second.skipped_files == [str(generated[0].resolve())]
    assert generated[0].stat().st_mtime_ns == modified  # reused, not rewritten


def test_generated_csv_round_trips_through_ingestion(tmp_path: Path) -> None:
    out = tmp_path / "gen.csv.gz"
    result = CliRunner().invoke(cli, ["generate", "--events", "4000", "--days", "14", "--seed",
                                      "3", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "wrote 4,000 events" in result.output
    settings = _settings(out)
    summary = ingest_source(settings, progress=False)
    assert summary.rows_read == 4_000
    reasons = summary.quarantined_by_reason
    assert set(reasons) <= {"missing_user_id", "invalid_price"}
    assert reasons.get("missing_user_id", 0) > 0
    events = _events(settings)
    assert set(events["event_type"]) <= {"view", "cart", "purchase", "return"}
    assert (events.loc[events["event_type"] == "return", "quantity"] < 0).all()


# ---- clear errors -------------------------------------------------------------------------
def _ingest_error(settings: Settings) -> str:
    with pytest.raises(IngestError) as info:
        ingest_source(settings, progress=False)
    return str(info.value)


def test_missing_required_column_lists_what_was_found(tmp_path: Path) -> None:
    path = _write(tmp_path, "events.csv", "customer,item_id,when\nu1,i1,2024-01-01\n")
    message = _ingest_error(_settings(path))
    assert str(path.resolve()) in message
    assert "missing required column(s) user_id, event_time" in message
    assert "found columns: customer, item_id, when" in message


def test_mapped_column_that_does_not_exist(tmp_path: Path) -> None:
    path = _write(tmp_path, "events.csv")
    message = _ingest_error(_settings(path, columns={"user_id": "CustomerID"}))
    assert "maps user_id to column 'CustomerID'" in message
    assert "found columns: user_id, item_id" in message


def test_headerless_file_without_header_option_gets_a_hint(tmp_path: Path) -> None:
    path = _write(tmp_path, "events.csv", "1,100,7,pv,1511544070\n2,101,7,pv,1511544071\n")
    message = _ingest_error(_settings(path))
    assert "source.header" in message


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.csv", b"", "the file is empty"),
        ("empty.csv.gz", gzip.compress(b""), "the file is empty"),
        ("header_only.csv", b"user_id,item_id,event_time\n", "but no data rows"),
        ("broken.csv.gz", b"this is not gzip at all", "not gzip data"),
        ("truncated.csv.gz", gzip.compress(CSV.encode() * 50)[:-40], "cannot read the gzip data"),
        ("events.json", b'{"user_id": 1}', "unknown source format"),
        ("events.parquet", b"PAR1 not really", "cannot read as Parquet"),
    ],
)
def test_broken_files_give_clear_errors(tmp_path: Path, name: str, content: bytes,
                                        expected: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    message = _ingest_error(_settings(path))
    assert expected in message
    assert str(path.resolve()) in message


def test_no_file_matches_the_glob(tmp_path: Path) -> None:
    message = _ingest_error(_settings(tmp_path / "nothing-*.csv"))
    assert "no source file matches" in message


def test_a_column_of_the_wrong_type_is_an_error_not_mass_quarantine(tmp_path: Path) -> None:
    rows = "".join(f"u{i},i{i},{1700000000 + i}\n" for i in range(20))
    path = _write(tmp_path, "events.csv", "user_id,item_id,event_time\n" + rows)
    message = _ingest_error(_settings(path))
    assert "no value of column 'event_time'" in message
    assert "source.time_unit" in message
    rows = "".join(f"u{i},i{i},2024-01-01,N{i}\n" for i in range(20))
    path = _write(tmp_path, "prices.csv", "user_id,item_id,event_time,price\n" + rows)
    assert "mapped to price" in _ingest_error(_settings(path))


def test_malformed_rows_are_quarantined_with_their_row_number(tmp_path: Path) -> None:
    text = (
        "user_id,item_id,event_time\n"
        "u1,i1,2024-01-01 00:00:00\n"
        "u2,i2,2024-01-01 00:00:00,surplus\n"
        "u3,i3,2024-01-01 00:00:00\n"
    )
    settings = _settings(_write(tmp_path, "events.csv", text))
    summary = ingest_source(settings, progress=False)
    assert (summary.rows_read, summary.rows_ingested, summary.rows_quarantined) == (3, 2, 1)
    assert summary.quarantined_by_reason == {"malformed_row": 1}
    with connect(settings) as wh:
        quarantine = wh.query_df(f"select source_row, raw_record from {wh.table('raw', 'quarantine')}")
        rows = wh.query_df(f"select source_row from {wh.table('raw', 'raw_events')} order by 1")
    assert quarantine["source_row"].tolist() == [2]
    assert "surplus" in quarantine["raw_record"].iloc[0]
    assert rows["source_row"].tolist() == [1, 3]


def test_header_that_does_not_fit_the_rows_is_an_error(tmp_path: Path) -> None:
    rows = "".join(f"{i},{100 + i},7,pv,{1511544070 + i}\n" for i in range(20))
    path = _write(tmp_path, "events.csv", rows)
    message = _ingest_error(_settings(path, header=["user_id", "item_id", "ts"]))
    assert "no row splits into the 3 columns" in message and "source.header" in message


def test_example_configs_load() -> None:
    configs = Path(__file__).resolve().parents[2] / "configs"
    synthetic = load_settings(configs / "synthetic.yaml")
    defaults = load_settings()
    assert synthetic.generator == defaults.generator
    assert synthetic.source == defaults.source and synthetic.task == defaults.task
    retail = load_settings(configs / "online_retail.yaml")
    assert retail.source.columns["user_id"] == "CustomerID"
    assert retail.config_dir == configs
    assert "event_type" not in retail.source.columns


def test_a_failing_file_leaves_no_partial_batch(tmp_path: Path) -> None:
    _write(tmp_path, "a_good.csv")
    good_rows = "".join(f"u{i},i{i},2024-01-01 00:00:00\n" for i in range(30))
    bad_rows = "".join(f"u{i},i{i},{1700000000 + i}\n" for i in range(30))
    # the second chunk is fine, but the first chunk's times are all epoch numbers
    _write(tmp_path, "b_bad.csv", "user_id,item_id,event_time\n" + bad_rows + good_rows)
    settings = _settings(tmp_path / "*.csv", chunk_rows=30)
    message = _ingest_error(settings)
    assert "b_bad.csv" in message
    with connect(settings) as wh:
        files = wh.query_df(f"select source_file from {wh.table('raw', 'ingested_files')}")
        sources = wh.query_df(f"select distinct source_file from {wh.table('raw', 'raw_events')}")
    assert [Path(p).name for p in files["source_file"]] == ["a_good.csv"]
    assert [Path(p).name for p in sources["source_file"]] == ["a_good.csv"]


# ---- command line -----------------------------------------------------------------------
def test_cli_prints_a_summary_table(tmp_path: Path) -> None:
    path = _write(tmp_path, "events.csv")
    runner = CliRunner()
    result = runner.invoke(cli, ["ingest", "--path", str(path), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "ingested" in result.output and "quarantined" in result.output
    assert "missing_user_id" in result.output and "invalid_price" in result.output
    again = runner.invoke(cli, ["ingest", "--path", str(path), "--json"])
    assert again.exit_code == 0, again.output
    assert '"skipped_files"' in again.output and str(path.resolve()) in again.output


def test_cli_reports_errors_without_a_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["ingest", "--path", str(tmp_path / "missing.csv")])
    assert result.exit_code == 1
    assert "no source file matches" in result.output
    assert "Traceback" not in result.output


def test_cli_help_and_bad_generate_arguments(tmp_path: Path) -> None:
    runner = CliRunner()
    for command in (["ingest", "--help"], ["generate", "--help"]):
        result = runner.invoke(cli, command)
        assert result.exit_code == 0 and "Usage" in result.output
    result = runner.invoke(cli, ["generate", "--events", "10", "--out", str(tmp_path / "x.json")])
    assert result.exit_code == 2 and "cannot tell the output format" in result.output
    assert not os.path.exists(tmp_path / "x.json")


def test_typed_parquet_columns(tmp_path: Path) -> None:
    """Numbers and timestamps typed by the Parquet writer: ids become text, epochs parse."""
    table = pa.table({
        "CustomerID": pa.array([17850.0, None, 12583.0]),
        "sku": pa.array([123, 456, 789], pa.int64()),
        "ts": pa.array([1511544070, 1511544080, 1511544090], pa.int64()),
        "behavior": pa.array(["pv", "buy", "buy"]).dictionary_encode(),
        "qty": pa.array([1, 2, -1], pa.int32()),
        "amount": pa.array([1.5, 2.0, -3.0]),
    })
    path = tmp_path / "typed.parquet"
    pq.write_table(table, path)
    settings = _settings(path, time_unit="s", event_types={"pv": "view", "buy": "purchase"},
                         columns={"user_id": "CustomerID", "item_id": "sku", "event_time": "ts",
                                  "event_type": "behavior", "quantity": "qty", "price": "amount"})
    summary = ingest_source(settings, progress=False)
    assert summary.quarantined_by_reason == {"invalid_price": 1, "missing_user_id": 1}
    events = _events(settings)
    assert events.loc[0, ["user_id", "item_id", "event_type"]].tolist() == ["17850", "123", "view"]
    assert events.loc[0, "event_time"] == pd.Timestamp("2017-11-24 17:21:10")
    with connect(settings) as wh:
        bad = wh.query_df(f"select price, user_id from {wh.table('raw', 'quarantine')} "
                          f"where reason = 'invalid_price'")
    assert bad.values.tolist() == [["-3.0", "12583.0"]]


def test_a_failure_after_some_chunks_were_written_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shopflow.ingest.loader as loader

    rows = "".join(f"u{i},i{i},2024-01-01 00:00:00\n" for i in range(50))
    settings = _settings(_write(tmp_path, "events.csv", "user_id,item_id,event_time\n" + rows),
                         chunk_rows=10)
    real = loader.convert_chunk
    calls = {"n": 0}

    def failing(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 4:
            raise MemoryError("simulated failure in chunk 4")
        return real(*args, **kwargs)

    monkeypatch.setattr(loader, "convert_chunk", failing)
    message = _ingest_error(settings)
    assert "simulated failure in chunk 4" in message and "events.csv" in message
    assert _counts(settings) == (0, 0, 0)
    monkeypatch.setattr(loader, "convert_chunk", real)
    assert ingest_source(settings, progress=False).rows_ingested == 50


def test_rows_of_a_crashed_ingestion_are_removed_before_the_next(tmp_path: Path) -> None:
    settings = _settings(_write(tmp_path, "events.csv"))
    ingest_source(settings, progress=False)
    with connect(settings) as wh:  # what a killed process would leave behind
        wh.execute(f"insert into {wh.table('raw', 'raw_events')} (user_id, item_id, batch_id) "
                   "values ('x', 'y', 'b-crashed')")
        wh.execute(f"insert into {wh.table('raw', 'quarantine')} (reason, batch_id) "
                   "values ('missing_user_id', 'b-crashed')")
    other = _write(tmp_path, "more.csv", CSV.replace("i1", "i7"))
    ingest_source(settings, path=str(other), progress=False)
    with connect(settings) as wh:
        left = wh.scalar(f"select count(*) from {wh.table('raw', 'raw_events')} "
                         "where batch_id = 'b-crashed'")
        quarantined = wh.scalar(f"select count(*) from {wh.table('raw', 'quarantine')} "
                                "where batch_id = 'b-crashed'")
    assert (left, quarantined) == (0, 0)
    assert _counts(settings) == (8, 4, 2)
