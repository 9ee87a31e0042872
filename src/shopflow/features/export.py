"""Turn the published mart snapshots into the Parquet files Feast's offline store reads.

``shopflow.transform.publish_marts`` writes ``data_dir/marts/<table>.parquet``. Feast
needs more than a copy: typed columns (ids as text, features as DOUBLE, naive-UTC
timestamps), a created timestamp for its point-in-time join, and no ambiguous rows.
:func:`export_marts` checks and normalises each mart with DuckDB and writes
``feast_dir/data/<table>.parquet`` atomically, so a failed export never leaves Feast a
half-written file.

Created timestamps: a row's ``created_at`` says when its values became known. Marts may
carry their own ``created_at`` (e.g. a backfill that recomputed an old cutoff); when the
column is absent or null the row counts as known at its own cutoff (``cutoff_time``),
which is true for marts built only from events at or before the cutoff.

Duplicates: rows with the same entity, ``cutoff_time`` and ``created_at``
- that are identical in every feature are collapsed (counted and logged);
- that disagree raise :class:`DuplicateFeatureRowsError`, naming examples: Feast would
  otherwise pick one of them arbitrarily.
Rows with the same entity and ``cutoff_time`` but different ``created_at`` are
corrections, kept on purpose: the latest one known at a cutoff wins.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shopflow import atomic
from shopflow.features.online_write import quote_identifier
from shopflow.features.schema import (
    CREATED_FIELD,
    TIMESTAMP_FIELD,
    FeatureTable,
    feature_tables,
)
from shopflow.locks import feature_state_lock
from shopflow.privacy import USER_COLUMNS, id_hasher

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    import duckdb

    from shopflow.settings import Settings

logger = logging.getLogger(__name__)


class MartExportError(ValueError):
    """A mart snapshot cannot be served by Feast as it is (missing file, columns, keys)."""


class DuplicateFeatureRowsError(MartExportError):
    """Two rows claim different values for one entity at one cutoff and creation time."""


@dataclass(frozen=True)
class TableExport:
    """What the export of one mart found and wrote."""

    table: str
    source: str
    target: str
    rows_read: int
    rows_written: int
    exact_duplicates_dropped: int
    corrections: int
    """Rows superseded by a later ``created_at`` for the same entity and cutoff."""
    min_cutoff: str | None
    max_cutoff: str | None
    seconds: float


@dataclass(frozen=True)
class ExportResult:
    """The export of every feature mart."""

    tables: list[TableExport] = field(default_factory=list)

    def by_table(self, name: str) -> TableExport:
        for table in self.tables:
            if table.table == name:
                return table
        raise KeyError(name)


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _timestamp_expr(column: str, column_type: str) -> str:
    """Naive UTC from whatever timestamp type the Parquet file holds."""
    col = quote_identifier(column)
    if "TIME ZONE" in column_type.upper():
        return f"timezone('UTC', {col})"
    return f"CAST({col} AS TIMESTAMP)"


def _one(conn: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...]:
    """The single row of an aggregate query."""
    row = conn.execute(sql).fetchone()
    if row is None:  # pragma: no cover - aggregates always return a row
        raise RuntimeError(f"query returned no row: {sql}")
    return row


def _columns(conn: duckdb.DuckDBPyConnection, path: Path) -> dict[str, str]:
    rows = conn.execute(
        f"DESCRIBE SELECT * FROM read_parquet({_sql_str(str(path))})"
    ).fetchall()
    return {row[0]: row[1] for row in rows}


def export_table(settings: Settings, table: FeatureTable, *, source: Path | None = None) -> TableExport:
    """Check and normalise one mart snapshot into Feast's offline file.

    Args:
        settings: the run's settings (paths).
        table: which mart.
        source: the mart Parquet file; default ``table.mart_path(settings)``.

    Raises:
        MartExportError: the file is missing, lacks columns, or has null keys/cutoffs.
        DuplicateFeatureRowsError: conflicting rows for one entity, cutoff and creation.
    """
    from shopflow.duckdb_connect import connect_duckdb

    started = time.perf_counter()
    source = source or table.mart_path(settings)
    target = table.offline_path(settings)
    if not source.is_file():
        raise MartExportError(
            f"mart snapshot {source} not found; publish the marts first "
            "(`shopflow transform`, which calls shopflow.transform.publish_marts)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    conn = connect_duckdb(settings)
    try:
        columns = _columns(conn, source)
        required = [table.join_key, TIMESTAMP_FIELD, *table.feature_names]
        missing = [c for c in required if c not in columns]
        if missing:
            raise MartExportError(
                f"mart {table.name} ({source}) lacks column(s) {missing}; "
                "docs/ARCHITECTURE.md lists the columns Feast serves"
            )
        extra = sorted(set(columns) - set(required) - {CREATED_FIELD})
        if extra:
            logger.info("mart %s: ignoring column(s) not served by Feast: %s", table.name, extra)
        key = quote_identifier(table.join_key)
        cutoff = _timestamp_expr(TIMESTAMP_FIELD, columns[TIMESTAMP_FIELD])
        created = (
            f"coalesce({_timestamp_expr(CREATED_FIELD, columns[CREATED_FIELD])}, {cutoff})"
            if CREATED_FIELD in columns
            else cutoff
        )
        features = ", ".join(
            f"CAST({quote_identifier(name)} AS DOUBLE) AS {quote_identifier(name)}"
            for name in table.feature_names
        )
        conn.execute(
            f"""
            CREATE TEMP TABLE typed AS
            SELECT CAST({key} AS VARCHAR) AS {key},
                   {cutoff} AS {TIMESTAMP_FIELD},
                   {created} AS {CREATED_FIELD},
                   {features}
            FROM read_parquet({_sql_str(str(source))})
            """
        )
        rows_read = _one(conn, "SELECT count(*) FROM typed")[0]
        null_keys, null_cutoffs = _one(
            conn,
            f"SELECT count(*) FILTER (WHERE {key} IS NULL OR {key} = ''), "
            f"count(*) FILTER (WHERE {TIMESTAMP_FIELD} IS NULL) FROM typed",
        )
        if null_keys or null_cutoffs:
            raise MartExportError(
                f"mart {table.name}: {null_keys} row(s) without {table.join_key} and "
                f"{null_cutoffs} row(s) without {TIMESTAMP_FIELD}; Feast cannot key them"
            )
        group = f"{key}, {TIMESTAMP_FIELD}, {CREATED_FIELD}"
        feature_list = ", ".join(quote_identifier(n) for n in table.feature_names)
        conflicts = conn.execute(
            f"""
            SELECT {key}, {TIMESTAMP_FIELD}, {CREATED_FIELD}, count(*) AS n
            FROM typed GROUP BY {group}
            HAVING count(DISTINCT ({feature_list})) > 1
            ORDER BY n DESC, {key} LIMIT 5
            """
        ).fetchall()
        if conflicts:
            total = _one(
                conn,
                f"""SELECT count(*) FROM (SELECT 1 FROM typed GROUP BY {group}
                    HAVING count(DISTINCT ({feature_list})) > 1)""",
            )[0]
            shown = id_hasher(settings).value if table.join_key in USER_COLUMNS else str
            examples = "; ".join(  # a shopper is named by pseudonym: messages reach the ledger
                f"{table.join_key}={shown(k)!r} cutoff_time={c} created_at={cr} ({n} rows)"
                for k, c, cr, n in conflicts
            )
            raise DuplicateFeatureRowsError(
                f"mart {table.name}: {total} (entity, cutoff_time, created_at) key(s) have "
                f"rows with different feature values, e.g. {examples}. Fix the mart, or give "
                f"the correcting row a later {CREATED_FIELD}."
            )
        conn.execute(
            f"CREATE TEMP TABLE deduped AS SELECT DISTINCT ON ({group}) * FROM typed "
            f"ORDER BY {key}, {TIMESTAMP_FIELD}, {CREATED_FIELD}"
        )
        rows_written, corrections, min_cutoff, max_cutoff = _one(
            conn,
            f"""
            SELECT count(*),
                   count(*) - count(DISTINCT ({key}, {TIMESTAMP_FIELD})),
                   CAST(min({TIMESTAMP_FIELD}) AS VARCHAR),
                   CAST(max({TIMESTAMP_FIELD}) AS VARCHAR)
            FROM deduped
            """,
        )
        dropped = rows_read - rows_written
        if dropped:
            logger.warning(
                "mart %s: collapsed %d exact duplicate row(s) (same %s, cutoff, created, values)",
                table.name, dropped, table.join_key,
            )
        if corrections:
            logger.info(
                "mart %s: %d row(s) superseded by a later %s for the same entity and cutoff",
                table.name, corrections, CREATED_FIELD,
            )
        with atomic.atomic_path(target) as tmp:
            conn.execute(
                f"COPY deduped TO {_sql_str(str(tmp))} (FORMAT parquet, COMPRESSION zstd)"
            )
    finally:
        conn.close()
    seconds = time.perf_counter() - started
    logger.info(
        "exported mart %s: %d rows -> %s in %.2fs (%.0f rows/s)",
        table.name, rows_written, target, seconds, rows_read / seconds if seconds else 0.0,
    )
    return TableExport(
        table=table.name,
        source=str(source),
        target=str(target),
        rows_read=int(rows_read),
        rows_written=int(rows_written),
        exact_duplicates_dropped=int(dropped),
        corrections=int(corrections),
        min_cutoff=min_cutoff,
        max_cutoff=max_cutoff,
        seconds=seconds,
    )


def export_marts(
    settings: Settings, *, tables: Iterable[FeatureTable] | None = None
) -> ExportResult:
    """Export every feature mart for Feast (see the module docstring for the rules).

    ``tables`` defaults to the run's (``feature_tables(settings)``: its task's catalogue and
    the frozen ``user_features_v1``). A legacy table whose snapshot was never published is
    skipped with a warning (:attr:`FeatureTable.legacy`); any other missing one fails.

    Returns:
        Per-table counts: rows read and written, duplicates collapsed, corrections.
    """
    chosen = feature_tables(settings) if tables is None else tables
    exported = []
    # one published set in, one consistent set out: no publication or materialization
    # of another run in between (shopflow.locks)
    with feature_state_lock(settings, what="export_marts"):
        for table in chosen:
            if table.legacy and not table.mart_path(settings).is_file():
                logger.warning(
                    "mart %s not published (%s): not exported; models on its feature "
                    "service cannot be trained, scored or served until `shopflow "
                    "transform` publishes it", table.name, table.mart_path(settings),
                )
                continue
            exported.append(export_table(settings, table))
    return ExportResult(tables=exported)
