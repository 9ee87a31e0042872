"""A layer's batch statistics computed by SQL in the warehouse (every gate on the warehouse).

The same numbers :mod:`shopflow.quality.metrics` takes from frames -- rows per table, the
key distributions and the label rate -- but each is a query that returns an aggregate or
one number per group, so no table becomes a frame:

- ``price``: the one ``price`` column (8 bytes a row; its PSI bins need every value);
- ``events_per_user_day``: ``count(*) group by user_id, day`` (one number per group);
- ``events_lookback``: the widest ``events_*`` window of ``user_features`` at its latest
  cutoff (one number per user);
- the label rate: ``avg(label)``;
- a raw batch's duplicate rate: ``count(*)`` minus the count of distinct keys.

The SQL is the same on DuckDB and PostgreSQL (``date_trunc``, ``cast ... as double
precision``), and the values are those the frame path computes, so verdicts match.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shopflow.features.matrix import numeric_values
from shopflow.quality.metrics import DUPLICATE_KEY, LayerStats, duplicate_key_columns

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import numpy as np

    from shopflow.quality.sql_datasource import WarehouseTable
    from shopflow.warehouse import Warehouse


def _column(warehouse: Warehouse, sql: str) -> np.ndarray | None:
    """The first column of a query as float64 (NaN for missing); None when it has no rows."""
    frame = warehouse.query_df(sql)
    if frame.empty:
        return None
    return numeric_values(frame.iloc[:, 0])


def _columns(warehouse: Warehouse, table: str) -> list[str]:
    return [str(c) for c in warehouse.query_df(f"select * from {table} where 1 = 0").columns]


def _event_values(warehouse: Warehouse, table: str) -> dict[str, np.ndarray]:
    """``price`` and ``events_per_user_day`` of an events table (raw or staging)."""
    columns = set(_columns(warehouse, table))
    found: dict[str, np.ndarray | None] = {}
    if "price" in columns:
        found["price"] = _column(warehouse, f"select price from {table}")
    if {"user_id", "event_time"} <= columns:
        found["events_per_user_day"] = _column(
            warehouse,
            f"select count(*) as n from {table} "
            "where user_id is not null and event_time is not null "
            "group by user_id, date_trunc('day', event_time)",
        )
    return {name: values for name, values in found.items() if values is not None}


def _lookback_values(warehouse: Warehouse, table: str) -> dict[str, np.ndarray]:
    """``events_lookback``: user events over the whole lookback at the latest cutoff."""
    from shopflow.features.schema import widest_window_column

    columns = _columns(warehouse, table)
    column = widest_window_column(columns, "events")
    if column is None or "cutoff_time" not in columns:
        return {}
    values = _column(
        warehouse,
        f"select {column} from {table} where cutoff_time = (select max(cutoff_time) from {table})",
    )
    return {"events_lookback": values} if values is not None else {}


def _label_rate(warehouse: Warehouse, table: str) -> float | None:
    if "label" not in _columns(warehouse, table):
        return None
    rate = warehouse.scalar(f"select avg(cast(label as double precision)) from {table}")
    return float(rate) if rate is not None else None


def _duplicate_rate(warehouse: Warehouse, table: WarehouseTable, columns: Sequence[str],
                    key: Sequence[str]) -> float | None:
    """:func:`shopflow.quality.metrics.duplicate_rate` as ``count(*)`` minus distinct keys.

    ``select distinct`` treats missing values as equal, as pandas' ``duplicated`` does.
    """
    if not table.rows:
        return None
    present = duplicate_key_columns(columns, key)
    if not present:
        return None if present is None else 0.0
    distinct = warehouse.scalar(
        f"select count(*) from (select distinct {', '.join(present)} from {table.qualified}) d"
    )
    return (table.rows - int(distinct or 0)) / table.rows


def _raw_rates(warehouse: Warehouse, table: WarehouseTable, key: Sequence[str]
               ) -> dict[str, float | None]:
    """The raw batch's duplicate rates, as :func:`shopflow.quality.metrics.batch_metrics`
    computes them from a frame."""
    columns = _columns(warehouse, table.qualified)
    rates = {"duplicate_rate": _duplicate_rate(warehouse, table, columns, key)}
    if tuple(key) != tuple(DUPLICATE_KEY):
        rates["exact_duplicate_rate"] = _duplicate_rate(warehouse, table, columns, DUPLICATE_KEY)
    return rates


def layer_stats(warehouse: Warehouse, layer: str, tables: Mapping[str, WarehouseTable],
                *, duplicate_key: Sequence[str] = DUPLICATE_KEY) -> LayerStats:
    """Rows, key distributions, label rate (marts) and duplicate rates (raw) of a layer,
    by SQL; ``duplicate_key``: ``quality.duplicate_key`` (raw only)."""
    values: dict[str, np.ndarray] = {}
    label_rate = None
    rates = None
    if layer in ("raw", "staging"):
        events = next(iter(tables.values()))
        values = _event_values(warehouse, events.qualified)
        if layer == "raw":
            rates = _raw_rates(warehouse, events, duplicate_key)
    elif layer == "marts":
        if "user_features" in tables:
            values = _lookback_values(warehouse, tables["user_features"].qualified)
        if "purchase_labels" in tables:
            label_rate = _label_rate(warehouse, tables["purchase_labels"].qualified)
    return LayerStats(
        rows={name: table.rows for name, table in tables.items()},
        values=values,
        label_rate=label_rate,
        rates=rates,
    )
