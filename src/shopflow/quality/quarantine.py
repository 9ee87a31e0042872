"""What happens to data a gate blocks, and the reports it leaves behind.

A blocked raw batch is *moved*, not deleted: its rows are written to
``quarantine/<batch_id>/rows.parquet`` (and the file is read back to check the count)
before they leave ``raw.raw_events``, and its ``raw.ingested_files`` row is marked
``quarantined`` in the same transaction. The folder also holds the gate's JSON report and
a README saying what failed and how to get the data back in. Staging and marts are
rebuilt by dbt from raw, so there is nothing to move: the blocked build is recorded
(folder + a line in ``reports/quality/blocked.jsonl``) and the pipeline stops before
``publish_marts``, leaving Feast and the served model untouched. Folders older than
``privacy.retention.quarantine`` are deleted whenever a new one is made.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shopflow import atomic
from shopflow.privacy import expire
from shopflow.quality import html_report
from shopflow.quality.result import GateResult, QualityError

if TYPE_CHECKING:
    from pathlib import Path

    from shopflow.settings import Settings
    from shopflow.warehouse import PostgresWarehouse, Warehouse

logger = logging.getLogger(__name__)


def _stamp(result: GateResult) -> str:
    started = datetime.fromisoformat(result.started_at) if result.started_at else datetime.now(UTC)
    return started.strftime("%Y%m%dT%H%M%SZ")


def _safe(name: str) -> str:
    """A batch id as a folder name (ids are ours, but never trust a path component)."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name).strip(".") or "batch"


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def write_report(settings: Settings, result: GateResult, *, kind: str | None = None) -> Path:
    """``reports/quality/<layer>-<timestamp>.json`` (and ``.html`` beside it)."""
    folder = settings.reports_dir / "quality"
    folder.mkdir(parents=True, exist_ok=True)
    prefix = kind or result.layer
    path = folder / f"{prefix}-{_stamp(result)}.json"
    counter = 1
    while path.exists() and result.report_path != path:
        counter += 1
        path = folder / f"{prefix}-{_stamp(result)}-{counter}.json"
    result.report_path = path
    atomic.write_text(path, json.dumps(result.to_dict(), indent=2, default=_json_default))
    atomic.write_text(path.with_suffix(".html"), html_report.render(result))
    return path


def _readme(result: GateResult, *, moved_rows: int | None) -> str:
    lines = [
        f"# Quarantined: {result.layer} gate, {result.started_at}",
        "",
        result.headline(),
        "",
        "## Failed error checks",
        "",
    ]
    lines += [
        f"- `{c.table}` **{c.check}**: observed {c.observed}; expected {c.expected}"
        for c in result.failed_errors
    ]
    if result.failed_warnings:
        lines += ["", "## Warnings", ""]
        lines += [f"- `{c.table}` {c.check}: observed {c.observed}" for c in result.failed_warnings]
    lines += ["", "## What is here", ""]
    if moved_rows is not None:
        lines += [
            f"- `rows.parquet`: the {moved_rows} rows of batch `{result.batch_id}`, moved out of "
            "`raw.raw_events` (its `raw.ingested_files` row is marked `quarantined`).",
        ]
    lines += [
        "- `report.json` / `report.html`: every check with observed and expected values.",
        f"- Data Docs: {result.data_docs_path}",
        "",
        "## Next steps",
        "",
    ]
    if moved_rows is not None:
        lines += [
            "Fix the source file and ingest it again: a changed file is a new batch, and the",
            "gate compares it with the last good batch, so nothing here needs cleaning up.",
            "If the change is intended (e.g. a real shift in prices), delete",
            f"`reports/quality/baseline-{result.layer}.json` to accept the new data as baseline.",
        ]
    else:
        lines += [
            "The published marts, Feast and the served model were left untouched. Fix the",
            "data or the dbt models and run the pipeline again.",
        ]
    return "\n".join(lines) + "\n"


def _expire_old(settings: Settings) -> None:
    """Delete quarantine folders past ``privacy.retention.quarantine`` (before adding one)."""
    if settings.quarantine_dir.is_dir():
        expire((p for p in settings.quarantine_dir.iterdir() if p.is_dir()),
               settings.privacy.retention.quarantine)


#: Rows per chunk when PostgreSQL streams a quarantined batch into its Parquet copy.
_COPY_CHUNK_ROWS = 100_000


def _copy_duckdb(warehouse: Warehouse, sql: str, path: Path) -> None:
    """DuckDB writes the Parquet file itself (``COPY (query) TO``), streaming."""
    from shopflow.quality.batch_view import sql_literal

    warehouse.execute(f"copy ({sql}) to {sql_literal(str(path))} (format parquet)")


def _copy_postgres(warehouse: PostgresWarehouse, sql: str, path: Path) -> None:
    """PostgreSQL rows in chunks of a server-side cursor, appended to one Parquet file.

    The file's schema is the first chunk's (a column all missing there becomes text);
    later chunks are cast to it.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer: pq.ParquetWriter | None = None
    with warehouse.connection.cursor(name="shopflow_quarantine", withhold=True) as cursor:
        cursor.itersize = _COPY_CHUNK_ROWS
        cursor.execute(sql)
        names: list[str] = []
        while True:
            chunk = cursor.fetchmany(_COPY_CHUNK_ROWS)
            names = names or [column.name for column in cursor.description]
            if writer is not None and not chunk:
                break
            table = pa.Table.from_pandas(pd.DataFrame.from_records(chunk, columns=names),
                                         preserve_index=False)
            if writer is None:
                schema = pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f
                                    for f in table.schema]).remove_metadata()
                writer = pq.ParquetWriter(path, schema)
            writer.write_table(table.cast(writer.schema))
            if not chunk:
                break
    if writer is not None:
        writer.close()


def move_raw_batch(
    settings: Settings,
    warehouse: Warehouse,
    result: GateResult,
) -> Path:
    """Move a blocked raw batch's rows from ``raw.raw_events`` to the quarantine folder.

    The Parquet copy is written by the warehouse's own means (DuckDB's ``COPY``, or
    PostgreSQL in chunks), so the batch never becomes one frame.

    Raises:
        QualityError: the Parquet copy does not hold every row (nothing is deleted then).
    """
    import pyarrow.parquet as pq

    from shopflow.quality.batch_view import sql_literal
    from shopflow.warehouse import PostgresWarehouse

    batch_id = result.batch_id
    if not batch_id:
        raise QualityError("cannot quarantine a raw check without a batch id")
    _expire_old(settings)
    folder = settings.quarantine_dir / _safe(batch_id)
    folder.mkdir(parents=True, exist_ok=True)
    rows_path = folder / "rows.parquet"
    events = warehouse.table("raw", "raw_events")
    rows = int(warehouse.scalar(f"select count(*) from {events} where batch_id = :b",
                                {"b": batch_id}) or 0)
    select = f"select * from {events} where batch_id = {sql_literal(batch_id)}"
    with atomic.atomic_path(rows_path) as tmp:
        if isinstance(warehouse, PostgresWarehouse):
            _copy_postgres(warehouse, select, tmp)
        else:
            _copy_duckdb(warehouse, select, tmp)
    written = pq.read_metadata(rows_path).num_rows
    if written != rows:
        raise QualityError(
            f"quarantine copy of batch {batch_id} holds {written} rows, expected {rows}; "
            "rows were left in raw.raw_events"
        )

    files = warehouse.table("raw", "ingested_files")
    has_files = warehouse.table_exists(files)
    if has_files:
        # ARCHITECTURE.md's ingested_files may predate the status column; add it if so.
        columns = warehouse.query_df(f"select * from {files} where 1 = 0").columns
        if "status" not in columns:
            warehouse.execute(f"alter table {files} add column status varchar default 'ingested'")
    with warehouse.transaction():
        warehouse.execute(f"delete from {events} where batch_id = :b", {"b": batch_id})
        if has_files:
            warehouse.execute(
                f"update {files} set status = 'quarantined' where batch_id = :b", {"b": batch_id}
            )
    left = warehouse.scalar(f"select count(*) from {events} where batch_id = :b", {"b": batch_id})
    if left:
        raise QualityError(f"{left} rows of batch {batch_id} are still in {events}")
    logger.warning("quarantined batch %s: %d rows moved to %s", batch_id, rows, folder)
    atomic.write_text(folder / "README.md", _readme(result, moved_rows=rows))
    return folder


def record_blocked_build(settings: Settings, result: GateResult) -> Path:
    """Record a blocked staging/marts build: a folder with its README (report added later)."""
    _expire_old(settings)
    folder = settings.quarantine_dir / f"{result.layer}-{_stamp(result)}"
    counter = 1
    while folder.exists():
        counter += 1
        folder = settings.quarantine_dir / f"{result.layer}-{_stamp(result)}-{counter}"
    folder.mkdir(parents=True)
    atomic.write_text(folder / "README.md", _readme(result, moved_rows=None))
    log = settings.reports_dir / "quality" / "blocked.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    entry = {
        "at": result.started_at,
        "layer": result.layer,
        "failed_errors": [c.check for c in result.failed_errors],
        "quarantine": str(folder),
    }
    with log.open("a") as handle:
        handle.write(json.dumps(entry) + "\n")
    logger.warning("%s build blocked; recorded in %s", result.layer, folder)
    return folder


def copy_report(result: GateResult) -> None:
    """Put the final JSON report beside the quarantined data."""
    if result.quarantine_path is not None and result.report_path is not None:
        atomic.write_text(result.quarantine_path / "report.json", result.report_path.read_text())
        html = result.report_path.with_suffix(".html")
        if html.is_file():
            atomic.write_text(result.quarantine_path / "report.html", html.read_text())
