"""One small connection to the warehouse, whichever backend holds it.

Ingestion, the quality gates, the dbt helpers and the pipeline all read and write the same
tables; they should not care whether those live in the DuckDB file in ``SHOPFLOW_HOME``
(the default, nothing to run) or in PostgreSQL (shared, what a team deploys). This module
hides the difference behind five operations -- ``execute``, ``query_df``, ``append_df``,
``table_exists`` and ``transaction`` -- plus ``create_table`` with portable column types.

SQL placeholders are written ``:name`` on both backends (as in SQLAlchemy) and passed as a
dict; they are translated to what the driver wants. Table names are ``schema.table``;
``Warehouse.table(layer, name)`` builds them from ``settings.warehouse.schema(layer)`` so the
schema prefix is never forgotten.

Usage::

    from shopflow.warehouse import connect

    with connect(settings) as wh:
        events = wh.table("raw", "raw_events")
        if wh.table_exists(events):
            frame = wh.query_df(f"select count(*) as n from {events}")
"""

from __future__ import annotations

import io
import logging
import re
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    import pandas as pd
    import pyarrow as pa

    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

#: Portable column types accepted by :meth:`Warehouse.create_table`.
ColumnType = Literal["text", "timestamp", "double", "integer", "bigint", "boolean"]

_TYPES: dict[str, dict[str, str]] = {
    "duckdb": {
        "text": "VARCHAR",
        "timestamp": "TIMESTAMP",
        "double": "DOUBLE",
        "integer": "INTEGER",
        "bigint": "BIGINT",
        "boolean": "BOOLEAN",
    },
    "postgres": {
        "text": "TEXT",
        "timestamp": "TIMESTAMP",
        "double": "DOUBLE PRECISION",
        "integer": "INTEGER",
        "bigint": "BIGINT",
        "boolean": "BOOLEAN",
    },
}
_PLACEHOLDER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


class WarehouseError(RuntimeError):
    """A warehouse operation failed; the message names the table or statement."""


def _check_identifier(name: str) -> str:
    """Refuse anything but ``name`` or ``schema.name``: table names are interpolated into SQL."""
    if not _IDENTIFIER.match(name):
        raise WarehouseError(f"invalid table name {name!r}: expected 'schema.table' identifiers")
    return name


def _split(table: str) -> tuple[str | None, str]:
    schema, _, name = _check_identifier(table).rpartition(".")
    return (schema or None), name


class Warehouse:
    """A connection to the warehouse. Use :func:`connect` to get one.

    Not thread-safe: one connection per thread or task (DuckDB also allows only one
    writing process per file).
    """

    backend: str
    _con: Any  # the backend's DB-API connection; None once closed

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    # ---- naming ---------------------------------------------------------------------
    def schema(self, layer: str) -> str:
        """The schema of a layer (``raw``, ``staging``, ``intermediate``, ``marts``)."""
        return self._settings.warehouse.schema(layer)

    def table(self, layer: str, name: str) -> str:
        """The qualified name ``<prefix><layer>.<name>`` of a table in a layer."""
        return _check_identifier(f"{self.schema(layer)}.{name}")

    # ---- operations every backend implements ------------------------------------------
    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run one statement (DDL or DML); ``:name`` placeholders take values from params."""
        raise NotImplementedError

    def query_df(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Run a query and return its rows as a pandas DataFrame."""
        raise NotImplementedError

    def scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        """The first column of the first row of a query (None when there is no row)."""
        frame = self.query_df(sql, params)
        if frame.empty:
            return None
        value = frame.iat[0, 0]
        return value.item() if hasattr(value, "item") else value

    def append_df(self, table: str, df: pd.DataFrame) -> int:
        """Append a frame's rows to an existing table, matching columns by name.

        Fast on both backends (DuckDB scans the frame in place; PostgreSQL uses COPY).
        Returns the number of rows appended.
        """
        raise NotImplementedError

    def table_exists(self, table: str) -> bool:
        """Whether ``schema.table`` exists (as a table or a view)."""
        schema, name = _split(table)
        frame = self.query_df(
            "select count(*) as n from information_schema.tables "
            "where table_schema = :schema and table_name = :name",
            {"schema": schema or self._default_schema(), "name": name},
        )
        return int(frame["n"].iloc[0]) > 0

    def ensure_schema(self, schema: str) -> None:
        """Create a schema if it does not exist yet."""
        self.execute(f"create schema if not exists {_check_identifier(schema)}")

    def create_table(self, table: str, columns: Mapping[str, ColumnType]) -> None:
        """Create ``schema.table`` (and its schema) if missing, with portable column types."""
        schema, _ = _split(table)
        if schema:
            self.ensure_schema(schema)
        types = _TYPES[self.backend]
        try:
            body = ", ".join(f"{_check_identifier(col)} {types[kind]}" for col, kind in columns.items())
        except KeyError as exc:
            raise WarehouseError(f"unknown column type {exc.args[0]!r} for {table}") from None
        self.execute(f"create table if not exists {table} ({body})")

    @contextmanager
    def transaction(self) -> Iterator[Warehouse]:
        """All statements inside commit together, or none do (rolled back on error)."""
        self.execute("begin")
        try:
            yield self
        except BaseException:
            self.execute("rollback")
            raise
        self.execute("commit")

    def close(self) -> None:
        """Release the connection (idempotent)."""
        if self._con is not None:
            self._con.close()
            self._con = None

    def _default_schema(self) -> str:
        raise NotImplementedError

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class DuckDBWarehouse(Warehouse):
    """The DuckDB file at ``settings.warehouse_path`` (the default backend)."""

    backend = "duckdb"

    def __init__(self, settings: Settings) -> None:
        from shopflow.duckdb_connect import connect_duckdb

        super().__init__(settings)
        path = settings.warehouse_path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._con: Any = connect_duckdb(settings, path)
        self._views = 0

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._con.execute(_PLACEHOLDER.sub(r"$\1", sql), dict(params) if params else None)

    def query_df(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        cursor = self._con.execute(_PLACEHOLDER.sub(r"$\1", sql), dict(params) if params else None)
        frame: pd.DataFrame = cursor.df()
        return frame

    def query_arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """The result as an Arrow table: the caller picks the pandas dtypes (e.g. ids as
        dictionaries) instead of paying for object columns first."""
        relation = self._con.sql(_PLACEHOLDER.sub(r"$\1", sql),
                                 params=dict(params) if params else None)
        fetch = getattr(relation, "to_arrow_table", None) or relation.arrow  # duckdb < 1.4
        table: pa.Table = fetch()
        return table

    def append_df(self, table: str, df: pd.DataFrame) -> int:
        _check_identifier(table)
        if df.empty:
            return 0
        self._views += 1
        view = f"_shopflow_append_{self._views}"
        self._con.register(view, df)
        try:
            self._con.execute(f"insert into {table} by name select * from {view}")
        finally:
            self._con.unregister(view)
        return len(df)

    def _default_schema(self) -> str:
        return "main"

    @property
    def connection(self) -> Any:
        """The underlying ``duckdb.DuckDBPyConnection`` (for what the abstraction lacks)."""
        return self._con


class PostgresWarehouse(Warehouse):
    """PostgreSQL at ``settings.warehouse.postgres_url`` (psycopg2, autocommit by default)."""

    backend = "postgres"

    def __init__(self, settings: Settings) -> None:
        import psycopg2

        super().__init__(settings)
        url = settings.warehouse.postgres_url
        # SQLAlchemy-style URLs ("postgresql+psycopg2://") are accepted too.
        dsn = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)
        try:
            self._con: Any = psycopg2.connect(dsn)
        except psycopg2.OperationalError as exc:
            from shopflow.redact import redact

            raise WarehouseError(
                redact(f"cannot connect to PostgreSQL warehouse {url}: {exc}", url)
            ) from None  # the driver's exception may carry the DSN: not chained
        self._con.autocommit = True

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        with self._con.cursor() as cur:
            cur.execute(*self._translate(sql, params))

    def query_df(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        import pandas as pd

        with self._con.cursor() as cur:
            cur.execute(*self._translate(sql, params))
            if cur.description is None:
                return pd.DataFrame()
            names = [col.name for col in cur.description]
            return pd.DataFrame.from_records(cur.fetchall(), columns=names)

    def append_df(self, table: str, df: pd.DataFrame) -> int:
        _check_identifier(table)
        if df.empty:
            return 0
        columns = ", ".join(_check_identifier(str(col)) for col in df.columns)
        buffer = io.StringIO()
        df.to_csv(buffer, index=False, header=False, na_rep="\\N", date_format="%Y-%m-%d %H:%M:%S.%f")
        buffer.seek(0)
        with self._con.cursor() as cur:
            cur.copy_expert(
                f"copy {table} ({columns}) from stdin with (format csv, null '\\N')", buffer
            )
        return len(df)

    def _default_schema(self) -> str:
        return "public"

    @staticmethod
    def _translate(sql: str, params: Mapping[str, Any] | None) -> tuple[str, Any]:
        if not params:
            return sql, None  # psycopg2 does no %-formatting without parameters
        return _PLACEHOLDER.sub(r"%(\1)s", sql.replace("%", "%%")), dict(params)

    @property
    def connection(self) -> Any:
        """The underlying psycopg2 connection (for what the abstraction lacks)."""
        return self._con


def connect(settings: Settings) -> Warehouse:
    """Open the warehouse that ``settings.warehouse.backend`` names.

    DuckDB (default) opens ``settings.warehouse_path``, creating the file; PostgreSQL opens
    ``settings.warehouse.postgres_url``. Use it as a context manager so the connection is
    closed (DuckDB holds a file lock while open).
    """
    backend = settings.warehouse.backend
    if backend == "duckdb":
        return DuckDBWarehouse(settings)
    if backend == "postgres":
        return PostgresWarehouse(settings)
    raise WarehouseError(f"unknown warehouse backend {backend!r}: use 'duckdb' or 'postgres'")
