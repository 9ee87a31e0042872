"""Great Expectations' SQL datasource over the warehouse, so a gate's checks run as SQL.

Validating a whole layer through GX's pandas datasource meant reading every table into a
frame first (16 GiB for staging at 10M events). A SQL datasource instead sends each
expectation's metric as a query to the warehouse (DuckDB or PostgreSQL) and fetches only
aggregates and, for failing row checks, a ``LIMIT``-ed sample (GX's ``SUMMARY`` result
format), so a gate's memory no longer grows with the table.

DuckDB goes through the ``duckdb-engine`` SQLAlchemy dialect. GX 1.24 opens a connection
per metric query and closes it before reading the rows; closing rolls back DuckDB's
implicit transaction, which discards the pending result (every metric then fails with
"list index out of range"). GX keeps one connection open for the dialects that need it
(SQLite, SQL Server, ...); :func:`_keep_duckdb_connection` adds DuckDB to that list, and
:func:`close` releases the connection (and the file) when the gate is done. GX 1.24 has
no regex condition for DuckDB either: :func:`_add_duckdb_regex` supplies DuckDB's own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shopflow.settings import Settings

#: The name of the datasource in a gate's (ephemeral) GX context.
DATASOURCE = "shopflow_warehouse"


@dataclass(frozen=True)
class WarehouseTable:
    """A table a gate validates where it lies, instead of a frame.

    Attributes:
        schema: the warehouse schema (``settings.warehouse.schema(layer)``).
        name: the table or view.
        rows: its row count (for the result and the log; counted by the gate).
    """

    schema: str
    name: str
    rows: int

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


class _DialectName(str):
    """A dialect name GX's persisted-connection check can read (it wants ``.value``)."""

    @property
    def value(self) -> str:
        return str(self)


def _keep_duckdb_connection() -> None:
    """Make GX keep one DuckDB connection per engine (see the module docstring)."""
    from great_expectations.execution_engine import sqlalchemy_execution_engine as engine

    persisted = engine._PERSISTED_CONNECTION_DIALECTS  # noqa: SLF001 - see module docstring
    if "duckdb" not in persisted:
        extended: Any = (*persisted, _DialectName("duckdb"))
        engine._PERSISTED_CONNECTION_DIALECTS = extended  # noqa: SLF001


def _duckdb_regex(column: Any, regex: str, dialect: Any, positive: bool = True) -> Any:
    """GX's regex condition, with DuckDB's ``regexp_matches`` where GX 1.24 has none.

    ``regexp_matches`` searches like PostgreSQL's ``~`` (and the pandas path's
    ``str.contains``); the suites' id patterns are anchored, so the verdicts are the same.
    """
    import sqlalchemy as sa
    from great_expectations.expectations.metrics import util

    if getattr(dialect, "name", None) != "duckdb":
        return util.get_dialect_regex_expression(column, regex, dialect, positive)
    matches = sa.func.regexp_matches(column, sa.literal(regex))
    return matches if positive else sa.not_(matches)


def _add_duckdb_regex() -> None:
    """Give GX's ``match_regex`` / ``not_match_regex`` metrics a DuckDB expression."""
    from great_expectations.expectations.metrics.column_map_metrics import (
        column_values_match_regex,
        column_values_not_match_regex,
    )

    for module in (column_values_match_regex, column_values_not_match_regex):
        module.get_dialect_regex_expression = _duckdb_regex  # type: ignore[attr-defined]


def _no_dialect_notice(record: logging.LogRecord) -> bool:
    """Drop GX's "No sqlalchemy dialect found" warning (one per type check on DuckDB).

    GX has no type module for duckdb-engine and compares SQLAlchemy's generic type names
    (``String``, ``FLOAT``, ``Integer``), which the suites' type lists name on purpose.
    """
    return not record.getMessage().startswith("No sqlalchemy dialect found")


def warehouse_url(settings: Settings) -> str:
    """The SQLAlchemy URL of the run's warehouse."""
    import re

    if settings.warehouse.backend == "duckdb":
        return f"duckdb:///{settings.warehouse_path}"
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg2://",
                  settings.warehouse.postgres_url)


def add_warehouse_datasource(context: Any, settings: Settings) -> Any:
    """The run's warehouse as a GX SQL datasource in ``context``.

    PostgreSQL gets GX's own PostgreSQL datasource; DuckDB the generic SQL one, whose
    connections come from :func:`shopflow.duckdb_connect.connect_duckdb`: duckdb-engine
    would open the file with a config of its own (a user agent), which DuckDB refuses
    while this process holds the file open with another (an Airflow task, dbt), and this
    way the gate's queries also run under the run's memory limit, threads and spill folder.
    """
    url = warehouse_url(settings)
    if settings.warehouse.backend == "postgres":
        return context.data_sources.add_postgres(DATASOURCE, connection_string=url)

    def open_duckdb() -> Any:
        from duckdb_engine import ConnectionWrapper

        from shopflow.duckdb_connect import connect_duckdb

        return ConnectionWrapper(connect_duckdb(settings, settings.warehouse_path))

    _keep_duckdb_connection()
    _add_duckdb_regex()
    notices = logging.getLogger("great_expectations.expectations.type_comparison")
    if _no_dialect_notice not in notices.filters:
        notices.addFilter(_no_dialect_notice)
    return context.data_sources.add_sql(
        DATASOURCE, connection_string=url, kwargs={"creator": open_duckdb}
    )


def add_table(datasource: Any, label: str, table: WarehouseTable) -> Any:
    """A whole-table batch definition of ``table`` (named ``label`` in Data Docs).

    GX 1.24 deprecates ``schema_name`` in favour of a schema in the connection, but one
    gate reads tables of several schemas (``raw``, ``marts``...) through one datasource,
    and a dotted ``table_name`` is quoted as a single identifier; so the schema is passed
    and the warning silenced here.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`schema_name` is deprecated", DeprecationWarning)
        asset = datasource.add_table_asset(
            name=label, table_name=table.name, schema_name=table.schema
        )
    return asset.add_batch_definition_whole_table("batch")


def add_metrics_row(datasource: Any, label: str, metrics: Mapping[str, float]) -> Any:
    """The batch metrics as a one-row query (``select 0.01 as duplicate_rate, ...``)."""
    columns = ", ".join(
        f"cast({float(value)!r} as double precision) as {name}" for name, value in metrics.items()
    )
    asset = datasource.add_query_asset(name=label, query=f"select {columns}")
    return asset.add_batch_definition_whole_table("batch")


def close(datasource: Any) -> None:
    """Release the datasource's connections (DuckDB: its hold on the warehouse file).

    GX's own ``close`` disposes the engine's pool but leaves the connection it keeps
    open for DuckDB (see :func:`_keep_duckdb_connection`) checked out.
    """
    engine = datasource.get_execution_engine()
    kept = getattr(engine, "_connection", None)
    if kept is not None:
        kept.close()
        engine._connection = None  # noqa: SLF001 - the connection GX keeps for DuckDB
    engine.close()
    datasource.get_engine().dispose()
