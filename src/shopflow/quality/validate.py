"""Run a layer's suites through one GX checkpoint, on warehouse tables (staging, marts) or
frames (a raw batch, a source file); no side effects beyond GX's own stores (validation
results, Data Docs). Sampled failing values of checks on
a user-id column are pseudonymized (:mod:`shopflow.quality.pseudonymize`) before the
results are stored for good, described or rendered.

Warehouse tables are validated in place through GX's SQL datasource
(:mod:`shopflow.quality.sql_datasource`), the batch metrics beside them as a one-row
query. A checkpoint passes the same batch parameters to every validation definition, so
frames cannot be handed over in memory when a gate validates several tables (marts) or a table
plus its batch metrics. Each frame is therefore written to a Parquet file in a scratch
folder for the run and read through a Parquet asset: cheap (well under a second for
400k rows), and the checkpoint stays a single, ordinary GX checkpoint.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shopflow.privacy import id_hasher
from shopflow.quality import suites as suite_modules
from shopflow.quality.context import DATA_DOCS_SITE, build_context, data_docs_dir, gx_dir
from shopflow.quality.describe import to_check_result
from shopflow.quality.metrics import Baseline, LayerStats, batch_metrics
from shopflow.quality.pseudonymize import pseudonymize_suite_results
from shopflow.quality.result import CheckResult, GateResult, QualityError
from shopflow.quality.sql_datasource import (
    WarehouseTable,
    add_metrics_row,
    add_table,
    add_warehouse_datasource,
)
from shopflow.quality.sql_datasource import close as close_datasource

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pandas as pd

    from shopflow.settings import Settings

logger = logging.getLogger(__name__)


def utc_now() -> datetime:
    """Naive UTC, like every timestamp in the warehouse."""
    return datetime.now(UTC).replace(tzinfo=None)


def build_suites(
    settings: Settings,
    layer: str,
    *,
    now: datetime,
    baseline: Baseline | None,
    from_file: bool = False,
) -> dict[str, Any]:
    """Table name -> the layer's suite for it, built from ``expectations/``."""
    quality = settings.quality
    rows = baseline.rows if baseline else {}
    if layer == "raw":
        module = suite_modules.load("raw")
        return {
            "raw_events": module.build_raw_suite(
                quality=quality, now=now, previous_rows=rows.get("raw_events"),
                from_file=from_file,
            )
        }
    if layer == "staging":
        module = suite_modules.load("staging")
        return {
            "stg_shop__events": module.build_staging_suite(
                quality=quality, now=now, previous_rows=rows.get("stg_shop__events")
            )
        }
    if layer == "marts":
        from shopflow.features.schema import user_feature_catalogue

        module = suite_modules.load("marts")
        suites: dict[str, Any] = module.build_marts_suite(
            quality=quality,
            previous_rows=rows,
            previous_label_rate=baseline.label_rate if baseline else None,
            user_catalogue=user_feature_catalogue(settings),
        )
        return suites
    raise QualityError(f"unknown layer {layer!r}: use raw, staging or marts")


def _vectorisable(frame: pd.DataFrame) -> pd.DataFrame:
    """Widen column types to the ones GX's pandas checks handle without a Python loop.

    GX 1.x vectorises ``column_values_between`` only for ``int64``, ``float64`` and
    ``datetime64[ns]``; DuckDB hands us ``datetime64[us]`` and ``int32``, which GX then
    checks one row at a time (~50x slower on timestamps). Values are unchanged; a column
    that cannot be widened (a date outside the nanosecond range) is left as it is, so
    the checks still see it.
    """
    import numpy as np
    import pandas as pd

    widened: dict[str, Any] = {}
    dtypes: list[Any] = list(frame.dtypes)
    for column, dtype in zip(map(str, frame.columns), dtypes, strict=True):
        try:
            if isinstance(dtype, pd.DatetimeTZDtype):
                if str(dtype.unit) != "ns":  # stubs say "ns" only; pandas 2 has s/ms/us too
                    widened[column] = frame[column].dt.as_unit("ns")
            elif isinstance(dtype, np.dtype) and dtype.kind == "M":
                if np.datetime_data(dtype)[0] != "ns":
                    widened[column] = frame[column].dt.as_unit("ns")
            elif isinstance(dtype, np.dtype) and dtype.kind in "iu" and dtype != np.int64:
                if dtype.kind == "i" or dtype.itemsize < 8:
                    widened[column] = frame[column].astype(np.int64)
            elif isinstance(dtype, np.dtype) and dtype.kind == "f" and dtype != np.float64:
                widened[column] = frame[column].astype(np.float64)
        except (OverflowError, ValueError, pd.errors.OutOfBoundsDatetime):
            continue
    return frame.assign(**widened) if widened else frame


def _to_parquet(frame: pd.DataFrame, path: Any) -> None:
    """Write a frame for GX to read; mixed-type text columns are written as text."""
    import pyarrow as pa

    frame = _vectorisable(frame)
    try:
        frame.to_parquet(path, index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        fixed = frame.copy()
        for column in fixed.select_dtypes(include="object").columns:
            fixed[column] = fixed[column].map(lambda v: v if v is None or v != v else str(v))
        fixed.to_parquet(path, index=False)


def _render_data_docs(context: Any, run_results: Mapping[Any, Any]) -> None:
    """Data Docs of this run's (pseudonymized) results, as GX's UpdateDataDocsAction would."""
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

    identifiers = [*run_results, *(ExpectationSuiteIdentifier(name=r.suite_name)
                                   for r in run_results.values())]
    context.build_data_docs(site_names=[DATA_DOCS_SITE], resource_identifiers=identifiers)


def evaluate(
    settings: Settings,
    layer: str,
    frames: Mapping[str, pd.DataFrame | WarehouseTable],
    *,
    baseline: Baseline | None,
    batch_id: str | None = None,
    quarantine_counts: Mapping[str, int] | None = None,
    from_file: bool = False,
    data_docs: bool = True,
    run_name: str | None = None,
    stats: LayerStats | None = None,
) -> GateResult:
    """Validate ``frames`` (table name -> rows) with the layer's suites and batch metrics.

    A :class:`WarehouseTable` is validated where it lies, through GX's SQL datasource
    (:mod:`shopflow.quality.sql_datasource`): each check is a query, and only aggregates
    and samples of failing values come back. A frame goes through a Parquet file and
    GX's pandas datasource (a source file checked before ingestion, a raw batch).

    Args:
        settings: the run's settings (thresholds, folders).
        layer: ``raw``, ``staging`` or ``marts``.
        frames: the rows to validate per table of the layer.
        baseline: the last good baseline (None: no volume or drift checks).
        batch_id: the raw batch, for names and the result.
        quarantine_counts: ingestion's counts for a raw batch (see ``batch_metrics``).
        from_file: raw only: a source file's frame, before ingestion.
        data_docs: render Data Docs (the gate does; quick checks need not).
        run_name: the GX run name (shown in Data Docs).
        stats: the layer's statistics computed in the warehouse
            (:func:`shopflow.quality.warehouse_stats.layer_stats`); required when
            ``frames`` holds warehouse tables, whose rows are not here to compute them.
    """
    import great_expectations as gx
    import pandas as pd
    from great_expectations.core.run_identifier import RunIdentifier

    started = utc_now().replace(microsecond=0)
    clock = time.perf_counter()
    suites = build_suites(settings, layer, now=started, baseline=baseline, from_file=from_file)
    missing = sorted(set(suites) - set(frames))
    if missing:
        raise QualityError(f"{layer} gate: no rows given for table(s) {missing}")
    in_memory = {t: f for t, f in frames.items() if not isinstance(f, WarehouseTable)}
    in_warehouse = {t: f for t, f in frames.items() if isinstance(f, WarehouseTable)}
    if in_warehouse and stats is None:
        raise QualityError(f"{layer} gate: warehouse tables need their statistics (stats=)")
    metrics = batch_metrics(layer, in_memory, baseline=baseline,
                            quarantine_counts=quarantine_counts,
                            duplicate_key=settings.quality.duplicate_key,
                            values=stats.values if stats is not None else None,
                            rates=stats.rates if stats is not None else None)
    metrics_suite = suite_modules.load("batch").build_batch_suite(
        layer=layer, metrics=metrics, quality=settings.quality
    )
    checkpoints = suite_modules.load("checkpoints")

    context = build_context(settings)
    datasource = context.data_sources.add_pandas("shopflow")
    warehouse = add_warehouse_datasource(context, settings) if in_warehouse else None
    scratch = gx_dir(settings) / "scratch" / f"{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    scratch.mkdir(parents=True, exist_ok=True)
    labels: dict[str, str] = {}
    order: dict[str, int] = {}
    definitions = []
    try:
        to_validate: list[tuple[str, Any, pd.DataFrame | WarehouseTable | dict[str, float]]] = [
            (table, suites[table], frames[table]) for table in suites
        ]
        if metrics_suite.expectations:
            known = {k: v for k, v in metrics.items() if v is not None}
            to_validate.append(("batch_metrics", metrics_suite, known))
        for table, suite, data in to_validate:
            label = f"{layer}.{table}"
            if warehouse is not None and isinstance(data, WarehouseTable):
                batch = add_table(warehouse, label, data)
            elif warehouse is not None and isinstance(data, dict):
                batch = add_metrics_row(warehouse, label, data)
            else:
                frame = pd.DataFrame([data]) if isinstance(data, dict) else data
                assert isinstance(frame, pd.DataFrame)
                path = scratch / f"{table}.parquet"
                _to_parquet(frame, path)
                asset = datasource.add_parquet_asset(name=label, path=path)
                batch = asset.add_batch_definition_whole_dataframe("batch")
            suite.name = label
            added = context.suites.add(suite)
            labels[added.name] = label
            for expectation in added.expectations:
                order[str(expectation.id)] = len(order)
            definitions.append(
                context.validation_definitions.add(
                    gx.ValidationDefinition(name=label, data=batch, suite=added)
                )
            )
        checkpoint = context.checkpoints.add(
            checkpoints.build_checkpoint(layer=layer, validation_definitions=definitions)
        )
        name = run_name or (f"{layer}-{batch_id}" if batch_id else layer)
        outcome = checkpoint.run(
            run_id=RunIdentifier(run_name=name, run_time=started.replace(tzinfo=UTC))
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if warehouse is not None:
            close_datasource(warehouse)
    if pseudonymize_suite_results(outcome.run_results.values(), id_hasher(settings)):
        for identifier, suite_result in outcome.run_results.items():
            context.validation_results_store.set(identifier, suite_result)
    if data_docs:
        _render_data_docs(context, outcome.run_results)

    checks: list[CheckResult] = []
    for suite_result in outcome.run_results.values():
        label = labels.get(suite_result.suite_name, suite_result.suite_name)
        ordered = sorted(
            suite_result.results,
            key=lambda r: order.get(str(r.expectation_config.id), len(order)),
        )
        checks.extend(to_check_result(label, r) for r in ordered)
    success = not any(c.blocking for c in checks)
    notes = []
    if baseline is None:
        notes.append("no previous good batch yet: volume and drift checks skipped")
    duration = time.perf_counter() - clock
    rows = {table: data.rows if isinstance(data, WarehouseTable) else len(data)
            for table, data in frames.items()}
    logger.info(
        "%s gate: %d checks on %d rows in %.1f s (%.0f rows/s)",
        layer, len(checks), sum(rows.values()), duration,
        sum(rows.values()) / max(duration, 1e-9),
    )
    return GateResult(
        layer=layer,
        batch_id=batch_id,
        success=success,
        checks=checks,
        metrics={k: (round(v, 6) if v is not None else None) for k, v in metrics.items()},
        rows=rows,
        started_at=started.replace(tzinfo=UTC).isoformat(timespec="seconds"),
        duration_s=round(duration, 3),
        baseline_batch=(baseline.batch_id or baseline.saved_at) if baseline else None,
        data_docs_path=(data_docs_dir(settings) / "index.html") if data_docs else None,
        notes=notes,
    )
