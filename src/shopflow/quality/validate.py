"""Run a layer's suites on frames through one GX checkpoint; no warehouse, no side effects
beyond GX's own stores (validation results, Data Docs). Sampled failing values of checks on
a user-id column are pseudonymized (:mod:`shopflow.quality.pseudonymize`) before the
results are stored for good, described or rendered.

A checkpoint passes the same batch parameters to every validation definition, so frames
cannot be handed over in memory when a gate validates several tables (marts) or a table
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
from shopflow.quality.metrics import Baseline, batch_metrics
from shopflow.quality.pseudonymize import pseudonymize_suite_results
from shopflow.quality.result import CheckResult, GateResult, QualityError

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
    frames: Mapping[str, pd.DataFrame],
    *,
    baseline: Baseline | None,
    batch_id: str | None = None,
    quarantine_counts: Mapping[str, int] | None = None,
    from_file: bool = False,
    data_docs: bool = True,
    run_name: str | None = None,
) -> GateResult:
    """Validate ``frames`` (table name -> rows) with the layer's suites and batch metrics.

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
    metrics = batch_metrics(layer, frames, baseline=baseline, quarantine_counts=quarantine_counts,
                            duplicate_key=settings.quality.duplicate_key)
    metrics_suite = suite_modules.load("batch").build_batch_suite(
        layer=layer, metrics=metrics, quality=settings.quality
    )
    checkpoints = suite_modules.load("checkpoints")

    context = build_context(settings)
    datasource = context.data_sources.add_pandas("shopflow")
    scratch = gx_dir(settings) / "scratch" / f"{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    scratch.mkdir(parents=True, exist_ok=True)
    labels: dict[str, str] = {}
    order: dict[str, int] = {}
    definitions = []
    try:
        to_validate = [(table, suites[table], frames[table]) for table in suites]
        if metrics_suite.expectations:
            metrics_frame = pd.DataFrame([{k: v for k, v in metrics.items() if v is not None}])
            to_validate.append(("batch_metrics", metrics_suite, metrics_frame))
        for table, suite, frame in to_validate:
            label = f"{layer}.{table}"
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
    rows = {table: len(frame) for table, frame in frames.items()}
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
