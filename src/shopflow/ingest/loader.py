"""Load the configured source into ``raw.raw_events``, once per file, losing nothing.

:func:`ingest_source` is the entry point (CLI ``shopflow ingest``, the pipeline's ingest
task). Per source file it:

1. fingerprints the bytes (sha256); a file whose fingerprint is in ``raw.ingested_files``
   with status ``ingested`` is skipped, so re-running ingestion adds no rows. (The quality
   gate sets a rejected batch's status to ``quarantined``; that file may be ingested again.)
2. reads it in chunks, every column as text, maps the columns and converts the rows
   (:mod:`shopflow.ingest.convert`);
3. appends good rows to ``raw.raw_events`` and broken rows, with a reason code, to
   ``raw.quarantine``; and records the batch in ``raw.ingested_files`` last. A failure
   half-way leaves no partial batch behind: on PostgreSQL the file is one transaction; on
   DuckDB (where a transaction would hold the whole file in memory) chunks commit as they
   go and a failed batch's rows are deleted, or, after a crash, before the next run.

Accounting is exact: ``rows_read == rows_ingested + rows_quarantined`` for every file.
With no ``source.path`` the built-in synthetic generator writes the source first (reused
while its parameters do not change).
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from shopflow.faults import crash_point
from shopflow.ingest.convert import convert_chunk, plan_columns
from shopflow.ingest.sources import IngestError, fingerprint, read_chunks, resolve_files

if TYPE_CHECKING:
    from pathlib import Path

    from shopflow.settings import Settings
    from shopflow.warehouse import ColumnType, Warehouse

logger = logging.getLogger(__name__)

__all__ = ["FileResult", "IngestError", "IngestSummary", "discard_batch", "discard_orphans",
           "ensure_raw_tables", "ingest_file", "ingest_source", "mark_batch", "synthetic_source"]

RAW_EVENTS: dict[str, ColumnType] = {
    "user_id": "text",
    "item_id": "text",
    "event_type": "text",
    "event_time": "timestamp",
    "price": "double",
    "quantity": "integer",
    "order_id": "text",
    "category_id": "text",
    "batch_id": "text",
    "source_file": "text",
    "source_row": "bigint",
    "ingested_at": "timestamp",
}
QUARANTINE: dict[str, ColumnType] = {
    "batch_id": "text",
    "source_file": "text",
    "source_row": "bigint",
    "reason": "text",
    "user_id": "text",
    "item_id": "text",
    "event_type": "text",
    "event_time": "text",
    "price": "text",
    "quantity": "text",
    "order_id": "text",
    "category_id": "text",
    "raw_record": "text",
    "quarantined_at": "timestamp",
}
INGESTED_FILES: dict[str, ColumnType] = {
    "batch_id": "text",
    "source_file": "text",
    "fingerprint": "text",
    "status": "text",
    "rows_read": "bigint",
    "rows_ingested": "bigint",
    "rows_quarantined": "bigint",
    "quarantine_reasons": "text",
    "ingested_at": "timestamp",
}
STATUS_INGESTED = "ingested"
STATUS_QUARANTINED = "quarantined"


@dataclass
class FileResult:
    """What happened to one source file."""

    source_file: str
    fingerprint: str
    batch_id: str | None  # None when skipped
    skipped: bool = False
    rows_read: int = 0
    rows_ingested: int = 0
    rows_quarantined: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class IngestSummary:
    """The outcome of :func:`ingest_source`, over all files of the source."""

    files: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def batch_ids(self) -> list[str]:
        return [f.batch_id for f in self.files if f.batch_id is not None]

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files)

    @property
    def rows_ingested(self) -> int:
        return sum(f.rows_ingested for f in self.files)

    @property
    def rows_quarantined(self) -> int:
        return sum(f.rows_quarantined for f in self.files)

    @property
    def quarantined_by_reason(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for f in self.files:
            total.update(f.quarantined_by_reason)
        return dict(sorted(total.items()))

    @property
    def skipped_files(self) -> list[str]:
        return [f.source_file for f in self.files if f.skipped]

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready view (for reports and the pipeline's XCom)."""
        return {
            "batch_ids": self.batch_ids,
            "rows_read": self.rows_read,
            "rows_ingested": self.rows_ingested,
            "rows_quarantined": self.rows_quarantined,
            "quarantined_by_reason": self.quarantined_by_reason,
            "skipped_files": self.skipped_files,
            "seconds": round(self.seconds, 3),
            "files": [vars(f) for f in self.files],
        }

    def to_dict(self) -> dict[str, object]:
        """Same as :meth:`as_dict` (the name the pipeline's JSON conversion looks for)."""
        return self.as_dict()


def ensure_raw_tables(wh: Warehouse) -> None:
    """Create ``raw.raw_events``, ``raw.quarantine`` and ``raw.ingested_files`` if missing.

    On PostgreSQL, where ingestions can overlap, a partial unique index also makes the
    database refuse a second ``ingested`` row for the same bytes (DuckDB allows one
    writing process, so there the check in :func:`ingest_file` cannot race).
    """
    wh.create_table(wh.table("raw", "raw_events"), RAW_EVENTS)
    wh.create_table(wh.table("raw", "quarantine"), QUARANTINE)
    files = wh.table("raw", "ingested_files")
    wh.create_table(files, INGESTED_FILES)
    if wh.backend == "postgres":
        wh.execute(
            f"create unique index if not exists ingested_files_fingerprint_once on {files} "
            f"(fingerprint) where status = '{STATUS_INGESTED}'"
        )


def synthetic_source(settings: Settings, *, progress: bool | None = None) -> Path:
    """The generator's file for ``settings.generator``, written on first use and reused after.

    Named by a hash of the generator parameters, so changing any of them writes a new file
    (and, having new bytes, it is ingested as a new batch).
    """
    from shopflow.ingest.generator import generate_events, parameters_fingerprint

    params = settings.generator
    path = settings.data_dir / "synthetic" / f"events-{parameters_fingerprint(params)}.parquet"
    if path.is_file():
        logger.info("reusing synthetic source %s", path)
        return path
    logger.info("generating %d synthetic events into %s", params.events, path)
    generate_events(params, path, progress=_progress(progress))
    return path


def ingest_source(settings: Settings, *, path: str | None = None,
                  progress: bool | None = None) -> IngestSummary:
    """Ingest every file of the source into the warehouse's raw layer.

    Args:
        settings: ``settings.source`` says what to read and how; ``settings.warehouse``
            where to write.
        path: a file or glob overriding ``settings.source.path`` (relative to the current
            directory). With neither, the synthetic generator provides the file.
        progress: show a progress bar on stderr (None: when stderr is a terminal).

    Raises:
        IngestError: a file cannot be ingested (the message names the file and problem);
            files before it in the glob stay ingested, the failing file leaves no rows.
    """
    from shopflow.warehouse import connect

    started = time.perf_counter()
    if path is not None:
        files = resolve_files(path)
    elif settings.source.path is not None:
        files = resolve_files(settings.source.path, config_dir=settings.config_dir)
    else:
        files = [synthetic_source(settings, progress=progress)]
    summary = IngestSummary()
    with connect(settings) as wh:
        ensure_raw_tables(wh)
        if wh.backend == "duckdb":
            discard_orphans(wh)
        for file in files:
            summary.files.append(ingest_file(wh, settings, file, progress=progress))
    summary.seconds = time.perf_counter() - started
    logger.info(
        "ingest: %d file(s), %d read, %d ingested, %d quarantined %s, %d skipped, %.1fs",
        len(files), summary.rows_read, summary.rows_ingested, summary.rows_quarantined,
        summary.quarantined_by_reason, len(summary.skipped_files), summary.seconds,
    )
    return summary


def ingest_file(wh: Warehouse, settings: Settings, path: Path, *,
                progress: bool | None = None) -> FileResult:
    """Ingest one file as one batch (or skip it if its bytes were ingested before)."""
    from tqdm import tqdm

    started = time.perf_counter()
    path = path.resolve()
    digest = fingerprint(path)
    files_table = wh.table("raw", "ingested_files")
    seen = wh.scalar(
        f"select count(*) from {files_table} where fingerprint = :fp and status = :status",
        {"fp": digest, "status": STATUS_INGESTED},
    )
    if seen:
        logger.info("skipping %s: already ingested (sha256 %s)", path, digest[:12])
        return FileResult(source_file=str(path), fingerprint=digest, batch_id=None, skipped=True)

    now = datetime.now(UTC).replace(tzinfo=None)
    batch_id = f"b{now:%Y%m%dT%H%M%S}-{digest[:10]}-{uuid.uuid4().hex[:6]}"
    result = FileResult(source_file=str(path), fingerprint=digest, batch_id=batch_id)
    reasons: Counter[str] = Counter()
    source = settings.source
    bar = tqdm(unit="rows", unit_scale=True, file=sys.stderr, disable=not _progress(progress),
               desc=f"ingest {path.name}")
    last_log = started
    # PostgreSQL keeps the whole file in one transaction. DuckDB would hold every
    # uncommitted row in memory (about 3 GB for 10M rows), so there each chunk commits and
    # a failure deletes the batch's rows again; a crash leaves rows whose batch is not in
    # ingested_files, removed by discard_orphans() before the next ingestion. DuckDB allows
    # one writing process, so no other ingestion can be running meanwhile.
    atomic = wh.backend != "duckdb"
    try:
        with wh.transaction() if atomic else nullcontext(wh):
            if atomic and _claimed_by_another(wh, files_table, digest):
                raise _AlreadyIngested
            plan: dict[str, str] | None = None
            for index, chunk in enumerate(read_chunks(path, source)):
                if plan is None:
                    columns = [str(c) for c in chunk.frame.columns]
                    if len(chunk.frame) == 0 and len(chunk.malformed) >= 10:
                        raise IngestError(
                            f"{path}: no row splits into the {len(columns)} columns "
                            f"{columns}, e.g. {chunk.malformed[0][1]!r}; check source.header "
                            "and source.delimiter"
                        )
                    plan = plan_columns(columns, source, path)
                    logger.info("%s: column mapping %s", path.name, plan)
                converted = convert_chunk(chunk, plan, source, path, check_columns=index == 0)
                good, bad = converted.good, converted.bad
                if len(good):
                    good["batch_id"] = batch_id
                    good["source_file"] = str(path)
                    good["ingested_at"] = now
                    wh.append_df(wh.table("raw", "raw_events"), good)
                if len(bad):
                    bad["batch_id"] = batch_id
                    bad["source_file"] = str(path)
                    bad["quarantined_at"] = now
                    wh.append_df(wh.table("raw", "quarantine"), bad)
                    reasons.update({str(k): int(v) for k, v in bad["reason"].value_counts().items()})
                read = len(chunk.frame) + len(chunk.malformed)
                result.rows_read += read
                result.rows_ingested += len(good)
                result.rows_quarantined += len(bad)
                bar.update(read)
                if time.perf_counter() - last_log >= 10.0:  # for logs without a terminal
                    last_log = time.perf_counter()
                    logger.info("%s: %d rows read (%.0f rows/s)", path.name, result.rows_read,
                                result.rows_read / max(last_log - started, 1e-9))
            if result.rows_read != result.rows_ingested + result.rows_quarantined:
                raise IngestError(  # a bug, not bad data: refuse to commit a leaky batch
                    f"{path}: accounting mismatch: read {result.rows_read}, ingested "
                    f"{result.rows_ingested}, quarantined {result.rows_quarantined}"
                )
            result.quarantined_by_reason = dict(sorted(reasons.items()))
            crash_point("inside:ingest")  # rows written, batch not yet recorded
            _record_batch(wh, files_table, result, now)
    except _AlreadyIngested:
        logger.info("skipping %s: another ingestion loaded it meanwhile", path)
        return FileResult(source_file=str(path), fingerprint=digest, batch_id=None, skipped=True)
    except BaseException as exc:
        if not atomic:
            discard_batch(wh, batch_id)
        if isinstance(exc, IngestError) or not isinstance(exc, Exception):
            raise
        raise IngestError(f"{path}: ingestion failed: {exc}") from exc
    finally:
        bar.close()
    result.seconds = time.perf_counter() - started
    logger.info(
        "%s: batch %s read %d, ingested %d, quarantined %d %s in %.1fs (%.0f rows/s)",
        path.name, batch_id, result.rows_read, result.rows_ingested, result.rows_quarantined,
        result.quarantined_by_reason, result.seconds,
        result.rows_read / result.seconds if result.seconds else 0.0,
    )
    return result


class _AlreadyIngested(Exception):  # noqa: N818 - control flow, never leaves this module
    """The file's bytes were ingested by a concurrent run: roll back, report skipped."""


def _claimed_by_another(wh: Warehouse, files_table: str, digest: str) -> bool:
    """In the batch's transaction: wait for any other ingestion of the same bytes, then
    say whether it loaded them (PostgreSQL only; the lock ends with the transaction).

    Without this, two overlapping runs both pass the "already ingested?" check and load
    the file twice; the unique index of :func:`ensure_raw_tables` is the backstop.
    """
    from shopflow.locks import advisory_key

    wh.execute("select pg_advisory_xact_lock(:key)",
               {"key": advisory_key("ingest", f"{files_table}:{digest}")})
    return bool(wh.scalar(
        f"select count(*) from {files_table} where fingerprint = :fp and status = :status",
        {"fp": digest, "status": STATUS_INGESTED},
    ))


def _record_batch(wh: Warehouse, table: str, result: FileResult, now: datetime) -> None:
    import pandas as pd

    wh.append_df(table, pd.DataFrame([{
        "batch_id": result.batch_id,
        "source_file": result.source_file,
        "fingerprint": result.fingerprint,
        "status": STATUS_INGESTED,
        "rows_read": result.rows_read,
        "rows_ingested": result.rows_ingested,
        "rows_quarantined": result.rows_quarantined,
        "quarantine_reasons": json.dumps(result.quarantined_by_reason, sort_keys=True),
        "ingested_at": now,
    }]))


def discard_batch(wh: Warehouse, batch_id: str) -> None:
    """Delete a batch's rows from ``raw_events`` and ``quarantine`` (an ingestion that failed)."""
    for name in ("raw_events", "quarantine"):
        wh.execute(f"delete from {wh.table('raw', name)} where batch_id = :b", {"b": batch_id})
    logger.warning("discarded the rows of failed batch %s", batch_id)


def discard_orphans(wh: Warehouse) -> list[str]:
    """Delete rows of batches that never reached ``ingested_files`` (a crashed ingestion)."""
    files = wh.table("raw", "ingested_files")
    orphans: set[str] = set()
    for name in ("raw_events", "quarantine"):
        frame = wh.query_df(
            f"select distinct batch_id from {wh.table('raw', name)} "
            f"where batch_id not in (select batch_id from {files})"
        )
        orphans.update(str(b) for b in frame["batch_id"] if b is not None)
    for batch_id in sorted(orphans):
        discard_batch(wh, batch_id)
    return sorted(orphans)


def mark_batch(wh: Warehouse, batch_id: str, status: str) -> None:
    """Set a batch's status in ``raw.ingested_files`` (the quality gate marks rejects
    ``quarantined``, which lets the same file be ingested again once fixed)."""
    if status not in (STATUS_INGESTED, STATUS_QUARANTINED):
        raise ValueError(f"unknown batch status {status!r}: use 'ingested' or 'quarantined'")
    wh.execute(
        f"update {wh.table('raw', 'ingested_files')} set status = :status where batch_id = :batch",
        {"status": status, "batch": batch_id},
    )


def _progress(progress: bool | None) -> bool:
    return sys.stderr.isatty() if progress is None else progress
