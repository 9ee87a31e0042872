"""Gate 1 (docs/DESIGN.md §6): run a layer's checkpoint and act on the verdict.

``run_gate`` reads what the layer holds from the warehouse, validates it
(:mod:`shopflow.quality.validate`), writes the JSON report and Data Docs, and then:

- passed: the run's statistics become the layer's baseline (the "last good batch");
- an ``error`` check failed: the raw batch is moved to quarantine (or, for staging and
  marts, the blocked build is recorded) and :class:`GateFailed` is raised, so the Airflow
  task fails and nothing downstream runs.

``check_raw_table`` and ``check_raw_frame`` run the raw suite without acting on it, for
``shopflow quality`` and for checking a source file before ingestion.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from shopflow.quality import quarantine
from shopflow.quality.metrics import load_baseline, new_baseline, save_baseline
from shopflow.quality.result import LAYERS, GateFailed, GateResult, Layer, QualityError

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pandas as pd

    from shopflow.quality.sql_datasource import WarehouseTable
    from shopflow.settings import Settings
    from shopflow.warehouse import Warehouse

logger = logging.getLogger(__name__)


def _require(warehouse: Warehouse, table: str, hint: str) -> None:
    if not warehouse.table_exists(table):
        raise QualityError(f"table {table} does not exist: {hint}")


def latest_batch(warehouse: Warehouse) -> str:
    """The most recently ingested batch still in ``raw.raw_events``."""
    events = warehouse.table("raw", "raw_events")
    _require(warehouse, events, "ingest a source first")
    batch = warehouse.scalar(
        f"select batch_id from {events} group by batch_id order by max(ingested_at) desc limit 1"
    )
    if batch is None:
        raise QualityError(f"{events} holds no batch: ingest a source first")
    return str(batch)


def _file_status(warehouse: Warehouse, batch_id: str | None) -> pd.DataFrame | None:
    files = warehouse.table("raw", "ingested_files")
    if not warehouse.table_exists(files):
        return None
    where, params = ("where batch_id = :b", {"b": batch_id}) if batch_id else ("", None)
    return warehouse.query_df(f"select * from {files} {where}", params)


def ingest_counts(warehouse: Warehouse, batch_id: str | None) -> dict[str, int] | None:
    """Rows read and quarantined by ingestion for a batch (all batches when None).

    None when ingestion's bookkeeping tables are absent (e.g. tables built by hand).
    """
    files = _file_status(warehouse, batch_id)
    if files is None or files.empty or "rows_read" not in files.columns:
        return None
    counts = {
        "rows_read": int(files["rows_read"].fillna(0).sum()),
        "quarantined": int(files["rows_quarantined"].fillna(0).sum())
        if "rows_quarantined" in files.columns else 0,
        "missing_user_id": 0,
    }
    table = warehouse.table("raw", "quarantine")
    if warehouse.table_exists(table):
        where, params = ("and batch_id = :b", {"b": batch_id}) if batch_id else ("", None)
        missing = warehouse.scalar(
            f"select count(*) from {table} where reason = 'missing_user_id' {where}", params
        )
        counts["missing_user_id"] = int(missing or 0)
    return counts


def _raw_batch(warehouse: Warehouse, batch_id: str) -> WarehouseTable:
    """A view of the batch's rows (:mod:`shopflow.quality.batch_view`); drop it when done."""
    from shopflow.quality.batch_view import create_batch_view, drop_batch_view

    events = warehouse.table("raw", "raw_events")
    _require(warehouse, events, "ingest a source first")
    view = create_batch_view(warehouse, batch_id)
    if view.rows == 0:
        files = _file_status(warehouse, batch_id)
        problem = None
        if files is None or files.empty:
            problem = f"batch {batch_id!r} is neither in {events} nor in ingested_files"
        elif "status" in files.columns and (files["status"] == "quarantined").any():
            problem = (f"batch {batch_id!r} was already quarantined (see the quarantine folder); "
                       "ingest a fixed file as a new batch")
        if problem:
            drop_batch_view(warehouse, view)
            raise QualityError(problem)
    logger.info("raw batch %s: %d rows, validated in the warehouse", batch_id, view.rows)
    return view


def _in_place(warehouse: Warehouse, layer: str, name: str, hint: str) -> WarehouseTable:
    """A whole warehouse table to validate where it lies, with its row count."""
    from shopflow.quality.sql_datasource import WarehouseTable

    table = warehouse.table(layer, name)
    _require(warehouse, table, hint)
    rows = int(warehouse.scalar(f"select count(*) from {table}") or 0)
    return WarehouseTable(warehouse.schema(layer), name, rows)


def _layer_tables(warehouse: Warehouse, layer: str) -> dict[str, WarehouseTable]:
    """The tables of a staging or marts gate, validated where they lie (no frames)."""
    from shopflow.quality import suites

    return {spec.table: _in_place(warehouse, spec.layer, spec.table,
                                  "build the dbt models first (shopflow transform)")
            for spec in suites.load("checkpoints").GATE_TABLES[layer]}


def run_gate(
    settings: Settings,
    layer: Layer,
    *,
    batch_id: str | None = None,
) -> GateResult:
    """Run the quality gate of one layer and act on its verdict.

    Args:
        settings: the run's settings.
        layer: ``raw`` (one ingested batch), ``staging`` or ``marts`` (the whole layer).
        batch_id: raw only: the batch to check; None: the most recently ingested one.

    Returns:
        The result of a passing gate (warnings included); its statistics are now the
        layer's baseline.

    Raises:
        GateFailed: an ``error`` check failed; the batch is quarantined (raw) or the
            blocked build recorded (staging/marts); the message lists every failed check.
        QualityError: the gate could not run (unknown layer, missing table or batch).
    """
    from shopflow.quality.validate import evaluate
    from shopflow.warehouse import connect

    if layer not in LAYERS:
        raise QualityError(f"unknown layer {layer!r}: use one of {', '.join(LAYERS)}")
    if batch_id is not None and layer != "raw":
        raise QualityError(f"--batch-id applies to the raw layer only, not {layer!r}")
    settings.ensure_dirs()
    from shopflow.quality.warehouse_stats import layer_stats

    baseline = load_baseline(settings, layer)
    counts = None
    view: WarehouseTable | None = None
    try:
        with connect(settings) as warehouse:
            if layer == "raw":
                batch_id = batch_id or latest_batch(warehouse)
                view = _raw_batch(warehouse, batch_id)
                tables = {"raw_events": view}
                counts = ingest_counts(warehouse, batch_id)
            else:
                tables = _layer_tables(warehouse, layer)
            stats = layer_stats(warehouse, layer, tables,
                                duplicate_key=settings.quality.duplicate_key)
        result = evaluate(
            settings, layer, tables, baseline=baseline, batch_id=batch_id,
            quarantine_counts=counts, stats=stats,
        )
    finally:
        if view is not None:
            from shopflow.quality.batch_view import drop_batch_view

            with connect(settings) as warehouse:
                drop_batch_view(warehouse, view)
    if result.success:
        save_baseline(
            settings,
            new_baseline(layer, {}, batch_id=batch_id, bins=settings.quality.drift_bins,
                         stats=stats),
        )
        quarantine.write_report(settings, result)
        logger.info("%s", result.headline())
        return result

    if view is not None:
        with connect(settings) as warehouse:
            result.quarantine_path = quarantine.move_raw_batch(settings, warehouse, result)
    else:
        result.quarantine_path = quarantine.record_blocked_build(settings, result)
    quarantine.write_report(settings, result)
    quarantine.copy_report(result)
    error = GateFailed(result)
    logger.error("%s", error)
    raise error


def check_raw_table(settings: Settings) -> GateResult:
    """The raw suite over the whole ``raw.raw_events`` table; reports only.

    Writes the JSON report (``raw-table-<timestamp>.json``) and Data Docs, but quarantines
    nothing and leaves the baseline alone: there is no single batch to act on. Volume and
    drift checks are skipped (they compare batches).
    """
    from shopflow.quality.validate import evaluate
    from shopflow.warehouse import connect

    settings.ensure_dirs()
    from shopflow.quality.warehouse_stats import layer_stats

    with connect(settings) as warehouse:
        tables = {"raw_events": _in_place(warehouse, "raw", "raw_events",
                                          "ingest a source first")}
        stats = layer_stats(warehouse, "raw", tables, duplicate_key=settings.quality.duplicate_key)
        counts = ingest_counts(warehouse, None)
    result = evaluate(
        settings, "raw", tables, baseline=None, quarantine_counts=counts,
        run_name="raw-table", stats=stats,
    )
    result.notes = ["whole-table check: volume and drift checks (which compare batches) skipped"]
    quarantine.write_report(settings, result, kind="raw-table")
    return result


def check_raw_frame(
    settings: Settings,
    frame: pd.DataFrame,
    *,
    from_file: bool = True,
    quarantine_counts: Mapping[str, int] | None = None,
) -> GateResult:
    """The raw suite on a frame in memory (e.g. a source file read into canonical columns).

    Nothing is written but GX's validation result; no Data Docs, report or quarantine.

    Args:
        settings: thresholds.
        frame: canonical event columns (plus lineage columns when ``from_file`` is False).
        from_file: the frame is a source file before ingestion: rows without a user id
            are allowed up to ``quality.max_null_user_rate`` and lineage is not required.
        quarantine_counts: optional ingestion counts (see ``metrics.batch_metrics``).
    """
    from shopflow.quality.validate import evaluate

    settings.ensure_dirs()
    return evaluate(
        settings, "raw", {"raw_events": frame}, baseline=None, from_file=from_file,
        quarantine_counts=quarantine_counts, data_docs=False, run_name="raw-frame",
    )
