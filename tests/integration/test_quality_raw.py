"""The raw gate on real DuckDB tables with real GX: clean batches pass, bad ones are blocked
with a message naming the problem and moved to quarantine, and the next good batch passes.

Tables are built here from small pandas frames with the columns of ARCHITECTURE.md, so
the gate is tested on its own; the "last good batch" baseline is seeded from a clean
frame (the statistics a passing gate would have left) to keep GX runs to one per test.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from shopflow.quality import GateFailed, QualityError, run_gate
from shopflow.quality.metrics import load_baseline, new_baseline, save_baseline
from shopflow.warehouse import connect

if TYPE_CHECKING:
    from collections.abc import Callable

    from shopflow.settings import Settings

pytestmark = pytest.mark.integration

ROWS = 1500
#: raw.raw_events as ARCHITECTURE.md documents it, in the warehouse's portable types.
RAW_EVENTS_TYPES = {
    "user_id": "text", "item_id": "text", "event_type": "text", "event_time": "timestamp",
    "price": "double", "quantity": "integer", "order_id": "text", "category_id": "text",
    "batch_id": "text", "source_file": "text", "source_row": "bigint", "ingested_at": "timestamp",
}


def events(batch_id: str, *, rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    """A clean batch of raw_events: 150 users, 200 items, 45 days up to an hour ago."""
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC).replace(tzinfo=None)
    return pd.DataFrame(
        {
            "user_id": [f"u{i:04d}" for i in rng.integers(0, 150, rows)],
            "item_id": [f"sku-{i}" for i in rng.integers(0, 200, rows)],
            "event_type": rng.choice(["view", "cart", "purchase", "return"], rows,
                                     p=[0.6, 0.2, 0.19, 0.01]),
            "event_time": now - pd.to_timedelta(rng.integers(3600, 45 * 86400, rows), "s"),
            "price": np.round(rng.lognormal(2.5, 0.6, rows), 2),
            "quantity": np.ones(rows, dtype="int32"),
            "order_id": [f"o{i}" for i in rng.integers(0, 600, rows)],
            "category_id": [f"c{i}" for i in rng.integers(0, 12, rows)],
            "batch_id": batch_id,
            "source_file": f"/data/{batch_id}.csv",
            "source_row": np.arange(1, rows + 1, dtype="int64"),
            "ingested_at": now,
        }
    )


def load_batch(settings: Settings, frame: pd.DataFrame, *, rows_read: int | None = None) -> None:
    """Append a batch to raw.raw_events (created from the frame's own schema if missing)
    and record it in raw.ingested_files, as ingestion does."""
    batch_id = str(frame["batch_id"].iloc[0]) if "batch_id" in frame else "bad"
    with connect(settings) as wh:
        wh.ensure_schema("raw")
        con = wh.connection
        con.register("batch_frame", frame)
        if wh.table_exists("raw.raw_events"):
            con.execute("insert into raw.raw_events by name select * from batch_frame")
        else:
            con.execute("create table raw.raw_events as select * from batch_frame")
        con.unregister("batch_frame")
        wh.create_table(
            "raw.ingested_files",
            {"batch_id": "text", "source_file": "text", "fingerprint": "text",
             "rows_read": "bigint", "rows_ingested": "bigint", "rows_quarantined": "bigint",
             "ingested_at": "timestamp", "status": "text"},
        )
        read = rows_read if rows_read is not None else len(frame)
        wh.execute(
            "insert into raw.ingested_files values (:b, :f, :fp, :r, :n, :q, now(), 'ingested')",
            {"b": batch_id, "f": f"/data/{batch_id}.csv", "fp": batch_id, "r": read,
             "n": len(frame), "q": read - len(frame)},
        )


def seed_baseline(settings: Settings, frame: pd.DataFrame) -> None:
    """The statistics a passing raw gate leaves for the next batch."""
    save_baseline(settings, new_baseline("raw", {"raw_events": frame}, batch_id="b0",
                                         bins=settings.quality.drift_bins))


def test_clean_batch_passes_writes_report_docs_and_baseline(settings: Settings) -> None:
    load_batch(settings, events("b1"))
    result = run_gate(settings, "raw", batch_id="b1")

    assert result.success and not result.failed_errors
    assert result.rows == {"raw_events": ROWS}
    assert len(result.checks) > 30
    report = json.loads(result.report_path.read_text())
    assert result.report_path.parent == settings.reports_dir / "quality"
    assert report["success"] is True and report["batch_id"] == "b1"
    assert (settings.reports_dir / "data_docs" / "index.html").is_file()
    assert list((settings.reports_dir / "data_docs" / "validations").rglob("*.html"))
    baseline = load_baseline(settings, "raw")
    assert baseline is not None and baseline.rows == {"raw_events": ROWS}
    assert {"price", "events_per_user_day"} <= set(baseline.histograms)


def test_the_batch_is_validated_in_the_warehouse_through_a_view_dropped_afterwards(
    settings: Settings,
) -> None:
    load_batch(settings, events("b1"))
    load_batch(settings, _negative_prices(events("b2", seed=5)))
    result = run_gate(settings, "raw", batch_id="b1")
    checks = {c.check: c for c in result.checks}
    # types as the warehouse names them; a type name is no shopper id to pseudonymize
    assert checks["user_id is text"].observed == "'String'"
    assert checks["price is a number"].observed == "'FLOAT'"
    assert result.rows == {"raw_events": ROWS}  # only b1's rows, b2 is not counted
    with connect(settings) as wh:
        views = wh.query_df("select table_name from information_schema.tables "
                            "where table_name like 'raw_batch_%'")
    assert views.empty, views


def _missing_column(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["item_id"])


def _renamed_column(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.rename(columns={"user_id": "customer_id"})


def _wrong_type(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(price=frame["price"].map(lambda p: f"{p:.2f} GBP"))


def _null_user_ids(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out.loc[out.sample(frac=0.3, random_state=1).index, "user_id"] = None
    return out


def _negative_prices(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    picked = out.sample(frac=0.1, random_state=2).index
    out.loc[picked, "price"] = -out.loc[picked, "price"]
    return out


def _duplicates(frame: pd.DataFrame) -> pd.DataFrame:
    copies = frame.sample(frac=0.05, random_state=3).copy()
    copies["source_row"] = np.arange(len(frame) + 1, len(frame) + len(copies) + 1)
    return pd.concat([frame, copies], ignore_index=True)


def _next_year(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    picked = out.sample(frac=0.2, random_state=4).index
    out.loc[picked, "event_time"] = out.loc[picked, "event_time"] + timedelta(days=365)
    return out


def _epoch_1970(frame: pd.DataFrame) -> pd.DataFrame:
    """A tenth of the rows at the Unix epoch: a unit or parsing mistake, not history."""
    out = frame.copy()
    picked = out.sample(frac=0.1, random_state=6).index
    out.loc[picked, "event_time"] = pd.Timestamp("1970-01-01") + pd.to_timedelta(
        out.loc[picked, "source_row"], "s")
    return out


def _volume_down(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sample(frac=0.1, random_state=5).reset_index(drop=True)


def _price_times_ten(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(price=frame["price"] * 10)


BAD_BATCHES: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], str]] = {
    "missing column": (_missing_column, "column item_id present: observed missing"),
    "renamed column": (_renamed_column, "column user_id present: observed missing"),
    "wrong type": (_wrong_type, "price is a number"),
    "30% null user ids": (_null_user_ids, "user_id not null: observed 450 of 1500 rows null"),
    "negative prices": (_negative_prices, "price not negative: observed 150 of 1500 rows"),
    "5% duplicate events": (_duplicates, "duplicate events <= 2%: observed 4.7"),
    "events dated next year": (_next_year, "event_time not in the future"),
    "1970 epoch timestamps": (
        _epoch_1970, "event_time not before 1990-01-01: observed 150 of 1500 rows"),
    "volume down 90%": (_volume_down, "row count not down >50% vs last good batch: observed 150"),
    "price distribution x10": (_price_times_ten, "unit price: PSI vs last good batch <= 0.25"),
}


@pytest.mark.parametrize("case", list(BAD_BATCHES))
def test_bad_batch_is_blocked_with_a_message_naming_the_problem(
    settings: Settings, case: str
) -> None:
    damage, expected_text = BAD_BATCHES[case]
    clean = events("b1")
    seed_baseline(settings, clean)
    bad = damage(events("b2", seed=11))
    load_batch(settings, bad)
    before = load_baseline(settings, "raw")

    with pytest.raises(GateFailed) as caught:
        run_gate(settings, "raw", batch_id="b2")

    message = str(caught.value)
    first = message.splitlines()[0]
    assert first.startswith("quality gate 'raw' (batch b2) FAILED: ")
    assert f"FAILED: {len(caught.value.result.failed_errors)} error check" in first
    assert expected_text in message, message
    # every blocking line names the key that moves its threshold (or says it has none)
    for line in message.splitlines()[1:]:
        if line.startswith("  - raw."):
            assert ("(threshold: quality." in line or "(config: source." in line
                    or "(fixed rule of the event contract" in line), line
    # the baseline is still the last good batch
    assert load_baseline(settings, "raw") == before


def test_a_purchase_history_from_the_1990s_passes_with_the_defaults(settings: Settings) -> None:
    history = events("b1")
    history["event_time"] = history["event_time"] - pd.DateOffset(years=30)
    assert history["event_time"].min() < pd.Timestamp("1997-01-01")
    load_batch(settings, history)
    result = run_gate(settings, "raw", batch_id="b1")
    assert result.success and not result.failed_errors


def test_an_explicit_max_event_age_still_blocks_old_events(settings: Settings) -> None:
    strict = settings.model_copy(update={"quality": settings.quality.model_copy(
        update={"max_event_age": timedelta(days=30)})})
    load_batch(settings, events("b1"))
    with pytest.raises(GateFailed) as caught:
        run_gate(strict, "raw", batch_id="b1")
    message = str(caught.value)
    assert "event_time not older than 30d" in message
    assert "(threshold: quality.max_event_age)" in message


def test_exact_duplicates_are_kept_and_counted_when_the_key_says_so(
    settings: Settings
) -> None:
    repeats = _duplicates(events("b1"))
    keep = settings.model_copy(update={"quality": settings.quality.model_copy(update={
        "duplicate_key": ["user_id", "item_id", "event_type", "event_time", "price",
                          "quantity", "order_id", "category_id", "source_file", "source_row"]})})
    load_batch(settings, repeats)
    result = run_gate(keep, "raw", batch_id="b1")
    assert result.success, [c.describe() for c in result.failed_errors]
    warned = {c.check: c for c in result.failed_warnings}
    kept = warned["no exact duplicate rows (kept: quality.duplicate_key)"]
    assert kept.observed.startswith("4.7")
    assert "duplicate events <= 2%" not in {c.check for c in result.failed_errors}


def test_renamed_column_is_reported_as_unexpected_too(settings: Settings) -> None:
    load_batch(settings, _renamed_column(events("b1")))
    with pytest.raises(GateFailed) as caught:
        run_gate(settings, "raw", batch_id="b1")
    warnings = {c.check: c for c in caught.value.result.failed_warnings}
    assert "customer_id" in warnings["no unexpected columns"].observed


def test_blocked_batch_moves_to_quarantine_and_next_good_batch_passes(settings: Settings) -> None:
    load_batch(settings, events("b1"))
    run_gate(settings, "raw", batch_id="b1")

    bad = _negative_prices(events("b2", seed=5))
    load_batch(settings, bad)
    with pytest.raises(GateFailed) as caught:
        run_gate(settings, "raw", batch_id="b2")

    folder = settings.quarantine_dir / "b2"
    assert caught.value.result.quarantine_path == folder
    assert pq.read_metadata(folder / "rows.parquet").num_rows == len(bad)
    quarantined = pd.read_parquet(folder / "rows.parquet")
    assert (quarantined["price"] < 0).sum() == (bad["price"] < 0).sum()
    report = json.loads((folder / "report.json").read_text())
    assert report["success"] is False and report["quarantine_path"] == str(folder)
    assert "price not negative" in (folder / "README.md").read_text()
    with connect(settings) as wh:
        counts = wh.query_df("select batch_id, count(*) as n from raw.raw_events group by 1")
        status = wh.query_df("select batch_id, status from raw.ingested_files order by 1")
    assert dict(zip(counts["batch_id"], counts["n"], strict=True)) == {"b1": ROWS}
    assert dict(zip(status["batch_id"], status["status"], strict=True)) == {
        "b1": "ingested", "b2": "quarantined"}

    # gating the quarantined batch again is a clear error, not a silent pass
    with pytest.raises(QualityError, match="already quarantined"):
        run_gate(settings, "raw", batch_id="b2")

    # the fixed data comes back as a new batch and passes, no cleanup needed
    load_batch(settings, events("b3", seed=6))
    result = run_gate(settings, "raw")  # None: the latest batch
    assert result.success and result.batch_id == "b3"
    assert load_baseline(settings, "raw").batch_id == "b3"


def test_rows_quarantined_at_ingestion_are_reported_and_block_beyond_the_threshold(
    settings: Settings,
) -> None:
    frame = events("b1")
    load_batch(settings, frame, rows_read=2 * ROWS)  # half the file had no user id
    with connect(settings) as wh:
        wh.create_table("raw.quarantine", {"batch_id": "text", "reason": "text"})
        wh.connection.execute(
            "insert into raw.quarantine select 'b1', 'missing_user_id' from range(?)", [ROWS]
        )
    with pytest.raises(GateFailed) as caught:
        run_gate(settings, "raw", batch_id="b1")
    assert "rows without user_id <= 35% of the file: observed 50.00%" in str(caught.value)


def test_cli_prints_the_table_and_exits_non_zero_on_error(settings: Settings) -> None:
    from shopflow.cli import cli

    load_batch(settings, _negative_prices(events("b1")))
    outcome = CliRunner().invoke(cli, ["quality", "--layer", "raw", "--batch-id", "b1"])
    assert outcome.exit_code == 1, outcome.output
    lines = outcome.output.splitlines()
    assert lines[0].split() == ["table", "check", "severity", "observed", "expected", "result"]
    failing = [line for line in lines if "price not negative" in line]
    assert failing and failing[0].rstrip().endswith("FAIL")
    assert "quality gate 'raw' (batch b1) FAILED: 1 error check failed" in outcome.output
    assert "great_expectations" not in outcome.output  # no library log lines


def test_cli_whole_table_check_changes_nothing(settings: Settings) -> None:
    from shopflow.cli import cli

    load_batch(settings, events("b1"))
    outcome = CliRunner().invoke(cli, ["quality", "--layer", "raw", "--failed-only"])
    assert outcome.exit_code == 0, outcome.output
    assert "quality gate 'raw' passed" in outcome.output
    assert load_baseline(settings, "raw") is None
    assert not any(settings.quarantine_dir.iterdir())


def test_whole_table_check_reports_a_bad_row_and_acts_on_nothing(settings: Settings) -> None:
    """``check_raw_table`` has no batch to quarantine: it reports, and every row stays."""
    from shopflow.quality.gate import check_raw_table

    load_batch(settings, _negative_prices(events("b1")))
    with connect(settings) as warehouse:
        before = warehouse.scalar("select count(*) from raw.raw_events")
    result = check_raw_table(settings)
    assert not result.success
    assert "price not negative" in {c.check for c in result.failed_errors}, result.headline()
    assert result.report_path is not None and result.report_path.name.startswith("raw-table-")
    assert any("volume and drift" in note for note in result.notes)
    with connect(settings) as warehouse:
        after = warehouse.scalar("select count(*) from raw.raw_events")
    assert after == before
    assert load_baseline(settings, "raw") is None
    assert not any(settings.quarantine_dir.iterdir())


def test_unknown_layer_and_missing_table_are_clear_errors(settings: Settings) -> None:
    with pytest.raises(QualityError, match="unknown layer 'gold'"):
        run_gate(settings, "gold")  # type: ignore[arg-type]
    with pytest.raises(QualityError, match="raw.raw_events does not exist"):
        run_gate(settings, "raw")


def test_file_frame_allows_guest_rows_up_to_the_threshold(settings: Settings) -> None:
    from shopflow.quality import check_raw_frame

    canonical = events("f1").drop(columns=["batch_id", "source_file", "source_row",
                                           "ingested_at"])
    guests = canonical.copy()
    guests.loc[guests.sample(frac=0.25, random_state=7).index, "user_id"] = None
    assert check_raw_frame(settings, guests).success

    too_many = canonical.copy()
    too_many.loc[too_many.sample(frac=0.5, random_state=8).index, "user_id"] = None
    result = check_raw_frame(settings, too_many)
    assert not result.success
    assert [c.check for c in result.failed_errors] == ["user_id not null (<= 35% missing)"]
    assert result.report_path is None and not any(settings.quarantine_dir.iterdir())


@pytest.mark.postgres
def test_raw_gate_on_postgres_quarantines_a_bad_batch(
    postgres_url: str, postgres_schema_prefix: str, shopflow_home
) -> None:
    from shopflow.settings import load_settings

    settings = load_settings(warehouse={"backend": "postgres", "postgres_url": postgres_url,
                                        "schema_prefix": postgres_schema_prefix})
    settings.ensure_dirs()
    with connect(settings) as wh:
        table = wh.table("raw", "raw_events")
        wh.create_table(table, RAW_EVENTS_TYPES)
        wh.append_df(table, events("b1"))
        wh.append_df(table, _negative_prices(events("b2", seed=3)))

    assert run_gate(settings, "raw", batch_id="b1").success
    with pytest.raises(GateFailed, match="price not negative: observed 150 of 1500 rows"):
        run_gate(settings, "raw", batch_id="b2")
    with connect(settings) as wh:
        left = wh.query_df(f"select batch_id, count(*) as n from {table} group by batch_id")
    assert dict(zip(left["batch_id"], left["n"], strict=True)) == {"b1": ROWS}
    assert pq.read_metadata(settings.quarantine_dir / "b2" / "rows.parquet").num_rows == ROWS


def test_batch_with_every_row_quarantined_at_ingestion_is_blocked(settings: Settings) -> None:
    load_batch(settings, events("b1"))
    with connect(settings) as wh:  # a second file whose rows all went to raw.quarantine
        wh.execute("insert into raw.ingested_files values ('b2', '/data/b2.csv', 'b2', 500, 0, "
                   "500, now(), 'ingested')")
    with pytest.raises(GateFailed) as caught:
        run_gate(settings, "raw", batch_id="b2")
    assert "batch not empty: observed 0; expected row count >= 1" in str(caught.value)
    assert pq.read_metadata(settings.quarantine_dir / "b2" / "rows.parquet").num_rows == 0
