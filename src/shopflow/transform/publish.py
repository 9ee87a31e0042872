"""Publish the marts as Parquet snapshots: the files Feast's offline store reads.

Publication is a separate step from building because the marts quality gate sits between
them: the pipeline builds (``run_dbt``), runs the gate on the warehouse tables, and only
then calls :func:`publish_marts`. A blocked batch therefore leaves the last good
snapshots in place. Each file is written next to its target and renamed over it, so a
reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

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


def read_mart(settings: Settings, table: str) -> pa.Table:
    """One mart from the warehouse as an Arrow table, sorted by its key.

    Timestamps come back as naive ``timestamp[us]`` (UTC) and integers as ``int64``,
    whatever the backend.

    Raises:
        PublishError: unknown table, or the warehouse does not have it (dbt not run).
    """
    if table not in MART_TABLES:
        raise PublishError(f"unknown mart {table!r}; marts are {sorted(MART_TABLES)}")
    schema = settings.warehouse.schema("marts")
    order = ", ".join(MART_TABLES[table])
    sql = f'select * from "{schema}"."{table}" order by {order}'
    if settings.warehouse.backend == "duckdb":
        arrow = _read_duckdb(settings.warehouse_path, sql, f"{schema}.{table}")
    else:
        arrow = _read_postgres(settings.warehouse.postgres_url, sql, f"{schema}.{table}")
    return _normalise_types(arrow)


def _read_duckdb(path: Path, sql: str, name: str) -> pa.Table:
    import duckdb

    if not path.is_file():
        raise PublishError(f"no DuckDB warehouse at {path}: ingest and run dbt first")
    try:
        with duckdb.connect(str(path)) as conn:
            return conn.sql(sql).to_arrow_table()
    except duckdb.CatalogException as exc:
        raise PublishError(f"mart {name} not found in {path}: run dbt first ({exc})") from exc


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
    """Write the marts (:data:`MART_TABLES`) to ``data_dir/marts/<table>.parquet``, atomically.

    Call only after the marts quality gate has passed. All are read before any
    is written, so a warehouse error leaves every old snapshot as it was.

    Returns:
        Table name -> path of its snapshot.

    Raises:
        PublishError: a mart is missing from the warehouse, or a file cannot be written.
    """
    import pyarrow.parquet as pq

    started = time.perf_counter()
    tables = {name: read_mart(settings, name) for name in MART_TABLES}
    target_dir = marts_dir(settings)
    target_dir.mkdir(parents=True, exist_ok=True)
    published: dict[str, Path] = {}
    for name, table in tables.items():
        target = target_dir / f"{name}.parquet"
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            pq.write_table(table, temporary)
            os.replace(temporary, target)
        except OSError as exc:
            raise PublishError(f"could not write snapshot {target}: {exc}") from exc
        finally:
            temporary.unlink(missing_ok=True)
        published[name] = target
        logger.info("published %s: %d rows -> %s", name, table.num_rows, target)
    logger.info("published %d marts in %.1fs", len(published), time.perf_counter() - started)
    return published
