"""One raw batch as a view, so the raw gate validates it where it lies.

A batch is ``raw.raw_events where batch_id = ...``. GX reflects no column types from a
query asset (the type checks would have no data), but it does from a view, on DuckDB and
PostgreSQL alike: so the gate creates ``raw.raw_batch_<hash>_<nonce>`` for the batch,
validates it as a table and drops it when done (a nonce keeps two gates on one batch
apart). The batch id is written into the view as a quoted literal: views take no
parameters.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import TYPE_CHECKING

from shopflow.quality.sql_datasource import WarehouseTable

if TYPE_CHECKING:
    from shopflow.warehouse import Warehouse


def sql_literal(value: str) -> str:
    """``value`` as a SQL string literal (quotes doubled), for statements without parameters."""
    return "'" + value.replace("'", "''") + "'"


def create_batch_view(warehouse: Warehouse, batch_id: str) -> WarehouseTable:
    """A view of the rows of ``batch_id`` in ``raw.raw_events``, with its row count."""
    events = warehouse.table("raw", "raw_events")
    digest = hashlib.sha1(batch_id.encode(), usedforsecurity=False).hexdigest()[:10]
    name = f"raw_batch_{digest}_{uuid.uuid4().hex[:6]}"
    view = WarehouseTable(warehouse.schema("raw"), name, 0)
    warehouse.execute(
        f"create view {view.qualified} as select * from {events} "
        f"where batch_id = {sql_literal(batch_id)}"
    )
    rows = int(warehouse.scalar(f"select count(*) from {view.qualified}") or 0)
    return WarehouseTable(view.schema, view.name, rows)


def drop_batch_view(warehouse: Warehouse, view: WarehouseTable) -> None:
    """Drop a view made by :func:`create_batch_view`."""
    warehouse.execute(f"drop view if exists {view.qualified}")
