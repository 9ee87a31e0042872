"""Publish the marts as Parquet snapshots: the files Feast's offline store reads.

Publication is a separate step from building because the marts quality gate sits between
them: the pipeline builds (``run_dbt``), runs the gate on the warehouse tables, and only
then calls :func:`publish_marts`. A blocked batch therefore leaves the last good
snapshots in place.

The marts are published as one *set*: every table of a publication is written into a new
folder ``data_dir/mart_versions/<version>/``, and only then does the one pointer,
``data_dir/marts`` (a symbolic link to that folder), switch to it with an atomic rename.
A reader of ``data_dir/marts/<table>.parquet`` sees the whole old set or the whole new
one, never user features of one build with labels of another, and a process killed at
any instant leaves the previous set published. The previous set is kept (a reader may
still be reading it); older ones and abandoned folders are removed by the next
publication.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shopflow.atomic import fsync_path, temporary_sibling
from shopflow.faults import crash_point
from shopflow.locks import feature_state_lock

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pandas as pd
    import pyarrow as pa

    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

#: The marts, each with the key columns its snapshot is sorted by.
MART_TABLES: dict[str, tuple[str, ...]] = {
    "user_features": ("user_id", "cutoff_time"),
    "item_features": ("item_id", "cutoff_time"),
    "purchase_labels": ("user_id", "cutoff_time"),
    # the frozen propensity_v1 features, for champions trained on them
    "user_features_v1": ("user_id", "cutoff_time"),
}


class PublishError(RuntimeError):
    """A mart could not be read from the warehouse or written as a snapshot."""


def marts_dir(settings: Settings) -> Path:
    """Where published snapshots live: ``SHOPFLOW_HOME/data/marts``."""
    return settings.data_dir / "marts"


def read_mart_snapshot(settings: Settings, table: str, *, columns: list[str] | None = None
                       ) -> pd.DataFrame:
    """A published mart snapshot (the gated copy Feast reads) as a frame (``columns`` only).

    Raises:
        FileNotFoundError: the marts were never published (run the training DAG first).
    """
    import pandas as pd

    path = marts_dir(settings) / f"{table}.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"no published {table} snapshot at {path}; run shopflow_training")
    return pd.read_parquet(path, columns=columns)


def current_watermark(settings: Settings) -> str | None:
    """The latest cutoff in the published user features (the serving snapshot time).

    The dbt serving cutoff is the newest event, so this is the published data's "now".
    """
    try:
        features = read_mart_snapshot(settings, "user_features", columns=["cutoff_time"])
    except FileNotFoundError:
        return None
    if features.empty:
        return None
    return str(features["cutoff_time"].max().isoformat())


#: Rows per record batch when a mart streams from the warehouse into its snapshot: the
#: publication holds one batch at a time, not the mart (millions of rows at 10M events).
PUBLISH_BATCH_ROWS = 250_000


def read_mart(settings: Settings, table: str) -> pa.Table:
    """One mart from the warehouse as an Arrow table, sorted by its key.

    Timestamps come back as naive ``timestamp[us]`` (UTC) and integers as ``int64``,
    whatever the backend. Holds the whole mart: publication streams it instead
    (:func:`iter_mart_batches`).

    Raises:
        PublishError: unknown table, or the warehouse does not have it (dbt not run).
    """
    import pyarrow as pa

    batches = iter_mart_batches(settings, table)
    first = next(batches)
    return pa.Table.from_batches([first, *batches], schema=first.schema)


def iter_mart_batches(settings: Settings, table: str, *, batch_rows: int = PUBLISH_BATCH_ROWS
                      ) -> Iterator[pa.RecordBatch]:
    """One mart, sorted by its key, as normalised record batches (at least one, maybe empty).

    DuckDB sorts (spilling past ``warehouse.memory_limit``) and hands the result over
    batch by batch; PostgreSQL's rows are read whole (its driver has no Arrow stream).

    Raises:
        PublishError: unknown table, or the warehouse does not have it (dbt not run).
    """
    if table not in MART_TABLES:
        raise PublishError(f"unknown mart {table!r}; marts are {sorted(MART_TABLES)}")
    schema = settings.warehouse.schema("marts")
    order = ", ".join(MART_TABLES[table])
    sql = f'select * from "{schema}"."{table}" order by {order}'
    if settings.warehouse.backend == "duckdb":
        return _stream_duckdb(settings, sql, f"{schema}.{table}", batch_rows)
    arrow = _read_postgres(settings.warehouse.postgres_url, sql, f"{schema}.{table}")
    return _batches_of(_normalise_types(arrow))


def _batches_of(table: pa.Table) -> Iterator[pa.RecordBatch]:
    """A table's batches; one empty batch (carrying the schema) for a table without rows."""
    import pyarrow as pa

    batches = table.to_batches()
    return iter(batches or [pa.RecordBatch.from_pylist([], schema=table.schema)])


def _stream_duckdb(settings: Settings, sql: str, name: str, batch_rows: int
                   ) -> Iterator[pa.RecordBatch]:
    """Normalised batches of ``sql`` on the DuckDB warehouse; a missing warehouse or mart
    raises here, before the first batch is asked for."""
    import duckdb

    from shopflow.duckdb_connect import connect_duckdb

    path = settings.warehouse_path
    if not path.is_file():
        raise PublishError(f"no DuckDB warehouse at {path}: ingest and run dbt first")
    conn = connect_duckdb(settings, path)
    try:
        reader = conn.sql(sql).to_arrow_reader(batch_rows)
    except duckdb.CatalogException as exc:
        conn.close()
        raise PublishError(f"mart {name} not found in {path}: run dbt first ({exc})") from exc
    return _normalised(reader, conn)


def _read_postgres(url: str, sql: str, name: str) -> pa.Table:
    import pandas as pd
    import pyarrow as pa
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            frame = pd.read_sql_query(sa.text(sql), conn)
    except sa.exc.ProgrammingError as exc:
        raise PublishError(f"mart {name} not found in PostgreSQL: run dbt first ({exc.orig})") from exc
    finally:
        engine.dispose()
    return pa.Table.from_pandas(frame, preserve_index=False)


def _normalised(reader: pa.RecordBatchReader, conn: Any) -> Iterator[pa.RecordBatch]:
    """The reader's batches through :func:`_normalise_types`; closes ``conn`` at the end."""
    import pyarrow as pa

    try:
        empty = True
        for batch in reader:
            empty = False
            yield from _batches_of(_normalise_types(pa.Table.from_batches([batch])))
        if empty:
            yield from _batches_of(_normalise_types(reader.schema.empty_table()))
    finally:
        conn.close()


#: Decimal places kept in a published double. DuckDB sums doubles in parallel, so two
#: builds of the same data differ in the last bits (1e-11 on a sum of money); LightGBM's
#: bins then differ and so does its model. Rounded, the same data gives the same snapshot.
SNAPSHOT_DECIMALS = 9


def _normalise_types(table: pa.Table) -> pa.Table:
    """The same snapshot from either backend and every build: naive ``timestamp[us]``,
    ``int64``, doubles rounded to :data:`SNAPSHOT_DECIMALS` places."""
    import numpy as np
    import pyarrow as pa

    fields = []
    for item in table.schema:
        if pa.types.is_timestamp(item.type):
            item = item.with_type(pa.timestamp("us"))
        elif pa.types.is_integer(item.type):
            item = item.with_type(pa.int64())
        fields.append(item)
    table = table.cast(pa.schema(fields))
    for index, item in enumerate(table.schema):
        if pa.types.is_floating(item.type):
            column = table.column(index)
            # numpy's round (rint(x * 1e9) / 1e9) maps both neighbours of a value to one
            # double; pyarrow's round leaves 1628.1200000000001 as it is
            values = np.round(column.to_numpy(zero_copy_only=False), SNAPSHOT_DECIMALS)
            nulls = column.is_null().to_numpy(zero_copy_only=False)
            table = table.set_column(index, item, pa.array(values, type=item.type, mask=nulls))
    return table


def publish_marts(settings: Settings) -> dict[str, Path]:
    """Publish the marts (:data:`MART_TABLES`) as one set under ``data_dir/marts``.

    Call only after the marts quality gate has passed. Every mart streams into a new set
    folder that nobody reads yet, so a warehouse error leaves the published set as it was;
    the set is switched with one atomic rename (see the module docstring), under the
    feature-state lock so a concurrent export never reads a half-switched state.

    Returns:
        Table name -> path of its snapshot (``data_dir/marts/<table>.parquet``).

    Raises:
        PublishError: a mart is missing from the warehouse, or a file cannot be written.
    """
    started = time.perf_counter()
    # the whole publication holds the lock: another one must not prune a set being written
    with feature_state_lock(settings, what="publish_marts"):
        folder = _write_set(settings)
        crash_point("inside:publish_marts")  # the new set is written, not yet published
        previous = published_version(settings)
        _switch(settings, folder)
        _prune(settings, keep={folder.name, previous})
    target_dir = marts_dir(settings)
    published = {name: target_dir / f"{name}.parquet" for name in MART_TABLES}
    logger.info("published mart set %s (%d marts) in %.1fs", folder.name, len(published),
                time.perf_counter() - started)
    return published


def _write_set(settings: Settings) -> Path:
    """Stream every mart into a new, not yet published set folder; returns it.

    A failure removes the folder, so nothing half-written is ever switched to.
    """
    import pyarrow.parquet as pq

    version = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    folder = versions_dir(settings) / version
    try:
        folder.mkdir(parents=True)
        for name in MART_TABLES:
            path = folder / f"{name}.parquet"
            batches = iter_mart_batches(settings, name)
            first = next(batches)
            rows = 0
            with pq.ParquetWriter(path, first.schema) as writer:
                for batch in itertools.chain([first], batches):
                    writer.write_batch(batch)
                    rows += batch.num_rows
            fsync_path(path)
            logger.info("wrote %s: %d rows -> %s", name, rows, folder)
        fsync_path(folder)
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise PublishError(f"could not write the mart snapshots to {folder}: {exc}") from exc
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def versions_dir(settings: Settings) -> Path:
    """Where every published (and the previous) mart set lives, one folder each."""
    return settings.data_dir / "mart_versions"


def published_version(settings: Settings) -> str | None:
    """The folder name of the set ``data_dir/marts`` points at (None: not a versioned set)."""
    pointer = marts_dir(settings)
    return Path(os.readlink(pointer)).name if pointer.is_symlink() else None


def _switch(settings: Settings, folder: Path) -> None:
    """Point ``data_dir/marts`` at ``folder`` with one atomic rename of a symbolic link.

    A plain folder there (published before sets were versioned, or written by hand) is
    first moved into the versions folder; from then on the pointer is always a link.
    """
    pointer = marts_dir(settings)
    if pointer.is_dir() and not pointer.is_symlink():
        legacy = versions_dir(settings) / f"legacy-{uuid.uuid4().hex[:8]}"
        os.replace(pointer, legacy)
        logger.info("moved the unversioned marts folder to %s", legacy)
    link = temporary_sibling(pointer)
    os.symlink(os.path.relpath(folder, pointer.parent), link)
    try:
        os.replace(link, pointer)
    except OSError as exc:
        link.unlink(missing_ok=True)
        raise PublishError(f"could not switch {pointer} to {folder}: {exc}") from exc
    fsync_path(pointer.parent)


def _prune(settings: Settings, *, keep: set[str | None]) -> None:
    """Remove every mart set but ``keep`` (the new one and the one it replaced, which a
    reader may still have open), including sets a killed publication left behind."""
    for stale in versions_dir(settings).iterdir():
        if stale.is_dir() and stale.name not in keep:
            shutil.rmtree(stale, ignore_errors=True)
