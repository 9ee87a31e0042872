"""The data stages of the training and features DAGs: plan, ingest, gate 1, dbt, Feast.

Each stage calls one documented entry point of another part (ingest, transform, quality,
features) and returns a small JSON-able summary: ids, paths, counts, verdicts, never data
frames. Data moves between stages through ``SHOPFLOW_HOME`` (warehouse, Feast, model
store, ledger), so any worker can run any stage, and a stage re-run for the same run id
redoes the same work (ingest skips fingerprinted files, dbt rebuilds, materialization
overwrites).

The shared words (context, results, outcomes) are in :mod:`shopflow.pipeline.vocabulary`;
the name -> function table the DAG tasks go through is :mod:`shopflow.pipeline.stages`.
Heavy libraries are imported inside the stages, never at import time.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, cast

from shopflow.faults import crash_point
from shopflow.jsonable import jsonable

if TYPE_CHECKING:
    from shopflow.pipeline.vocabulary import StageContext, StageResult
    from shopflow.quality.result import Layer
    from shopflow.settings import Settings

logger = logging.getLogger(__name__)


def plan(settings: Settings, context: StageContext, *,
         queued: dict[str, Any] | None = None) -> StageResult:
    """Validate the params against the config once, and fix the run's families and id.

    Fails fast (before any data moves) on a bad config, unknown param or a forced
    promotion without a reason. ``queued`` (from the orchestrator) says how long the run
    waited behind another one; it goes into the record so the summary explains a late start.
    """
    from shopflow.durations import format_duration

    resolved = context.resolved
    families = list(settings.training.families)
    if "baseline" not in families and _no_production(settings):
        logger.info("no production model yet: training the baseline too (first-run rule)")
        families.insert(0, "baseline")
    return {
        "run_id": context.run_id,
        "home": str(settings.home_dir),
        "families": families,
        "horizon": format_duration(settings.task.horizon),
        "lookback": format_duration(settings.task.lookback),
        "min_improvement": settings.gate.min_improvement,
        "force_promote": bool(resolved["force_promote"]),
        "dry_run": bool(resolved["dry_run"]),
        **({"queued": _log_queued(queued)} if queued else {}),
    }


def _log_queued(queued: dict[str, Any]) -> dict[str, Any]:
    logger.warning("this run %s", queued.get("note", "waited in the queue"))
    return queued


def _no_production(settings: Settings) -> bool:
    from shopflow.ledger import Ledger

    ledger = Ledger(settings.ledger_url)
    try:
        return ledger.production() is None
    finally:
        ledger.close()


def ingest(settings: Settings, context: StageContext) -> StageResult:
    """Load the configured source (or the synthetic generator) into ``raw.raw_events``."""
    from shopflow.ingest import ingest_source

    summary: StageResult = jsonable(ingest_source(settings))
    return summary


def quality_gate(settings: Settings, context: StageContext, *, layer: str,
                 ingested: dict[str, Any] | None = None) -> StageResult:
    """Gate 1 on one layer; ``GateFailed`` stops the run (the task fails, no retry).

    On ``raw`` each batch the ingest task loaded is checked on its own (a re-run that
    ingested nothing new checks the table as a whole).
    """
    from shopflow.quality import run_gate

    batch_ids = list((ingested or {}).get("batch_ids") or []) if layer == "raw" else []
    results = [run_gate(settings, cast("Layer", layer), batch_id=b)
               for b in (batch_ids or [None])]
    return {
        "layer": layer,
        "passed": all(getattr(r, "passed", True) for r in results),
        "summary": "; ".join(_headline(r) for r in results),
        "batches": [jsonable(r) for r in results],
    }


def _headline(result: Any) -> str:
    headline = getattr(result, "headline", None)
    return str(headline() if callable(headline) else headline or result)


def dbt_layer(settings: Settings, context: StageContext, *, layer: str) -> StageResult:
    """``dbt build --select <layer>``: models and their tests for one layer.

    A failed test raises :class:`~shopflow.transform.DbtTestFailed`, a permanent error: the
    run is blocked and not retried (the same data fails the same test). dbt not starting
    or a model erroring raises a plain ``DbtError``, which Airflow retries.
    """
    from shopflow.locks import WAREHOUSE_BUILD, state_lock
    from shopflow.transform import run_dbt

    with state_lock(settings, WAREHOUSE_BUILD, what=f"dbt {layer}"):
        result = run_dbt(settings, command="build", select=layer,
                         on_node=lambda _node: crash_point(f"inside:dbt_layer[{layer}]"))
        docs = _dbt_docs(settings) if layer == "marts" else None
    return {
        "layer": layer,
        "success": result.success,
        "seconds": round(result.elapsed_seconds, 3),
        "status_counts": result.status_counts(),
        "failures": [],  # run_dbt raises on any failure; kept for the record's shape
        **({"docs": docs} if layer == "marts" else {}),
    }


def _dbt_docs(settings: Settings) -> str | None:
    """The dbt docs page of the marts just built; a docs failure never fails the build."""
    from shopflow.transform import DbtError
    from shopflow.transform.docs import generate_docs

    try:
        return str(generate_docs(settings))
    except DbtError as exc:
        logger.warning("dbt docs not generated (the marts are built): %s", exc)
        return None


def publish_marts(settings: Settings, context: StageContext) -> StageResult:
    """Make the gated marts the ones Feast and training read."""
    from shopflow.transform import publish_marts as publish

    return jsonable(publish(settings)) or {"published": True}


def feast_apply(settings: Settings, context: StageContext) -> StageResult:
    """Register entities, views and feature services (idempotent)."""
    import shopflow.features as features

    return jsonable(features.apply(settings)) or {"applied": True}


def feast_materialize(settings: Settings, context: StageContext, *,
                      incremental: bool = False) -> StageResult:
    """Load the latest feature values into the online store.

    Materialization is incremental (from each view's watermark minus the configured
    overlap), so the training run and the hourly features DAG share one code path;
    ``incremental`` only labels the record.
    """
    from shopflow.features import materialize

    result = materialize(settings)
    summary = jsonable(result) or {}
    for name in ("entities", "seconds", "rows_per_second"):
        value = getattr(result, name, None)
        if value is not None:
            summary[name] = jsonable(value)
    summary["incremental"] = incremental
    return summary
