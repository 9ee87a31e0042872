"""The stages of Shopflow's DAGs, as plain functions of ``(settings, context, **inputs)``.

Each stage calls one documented entry point of another part (ingest, transform, quality,
features, training, recommend, deploy, monitoring) and returns a small JSON-able summary: ids, paths,
counts, verdicts, never data frames. Data moves between stages through ``SHOPFLOW_HOME``
(warehouse, Feast, model store, ledger), so any worker can run any stage, and a stage
re-run for the same run id redoes the same work (ingest skips fingerprinted files, dbt
rebuilds, materialization overwrites, candidates are keyed by run id).

Heavy libraries are imported inside the stages, never at import time.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

DBT_LAYERS = ("staging", "intermediate", "marts")
GATE_LAYERS = ("raw", "staging", "marts")


class PipelineBlocked(RuntimeError):
    """A stage decided that the run must stop here (not a crash: a verdict)."""


class StageSkipped(Exception):
    """Nothing for this stage to do in this run (dry run, champion kept); downstream skips."""


@dataclass(frozen=True)
class StageContext:
    """What a stage knows about the run it belongs to.

    Attributes:
        run_id: filesystem-safe run id (model versions and records hang off it).
        params: the run's params as triggered (unresolved).
        dag_id: the DAG the run belongs to.
        actor: who triggered the run, recorded with every ledger decision.
        data_interval_start: ISO start of the run's data interval, if scheduled.
        data_interval_end: ISO end of the run's data interval, if scheduled.
    """

    run_id: str
    params: dict[str, Any] = field(default_factory=dict)
    dag_id: str = "shopflow_training"
    actor: str = "airflow"
    data_interval_start: str | None = None
    data_interval_end: str | None = None

    @property
    def resolved(self) -> dict[str, Any]:
        """Params with defaults filled in."""
        from shopflow.pipeline.params import resolve_params, specs_for

        return resolve_params(self.params, specs_for(self.dag_id))


def as_jsonable(value: Any) -> Any:
    """Turn a result object of another part (dataclass, pydantic, mapping) into JSON types."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): as_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [as_jsonable(v) for v in value]
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return as_jsonable(to_dict())
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        return as_jsonable(model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return as_jsonable({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", 1) == 0:
        return as_jsonable(item())
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return isoformat()
    return str(value)


# ---- data --------------------------------------------------------------------------------
def plan(settings: Settings, context: StageContext) -> dict[str, Any]:
    """Validate the params against the config once, and fix the run's families and id.

    Fails fast (before any data moves) on a bad config, unknown param or a forced
    promotion without a reason.
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
    }


def _no_production(settings: Settings) -> bool:
    from shopflow.ledger import Ledger

    ledger = Ledger(settings.ledger_url)
    try:
        return ledger.production() is None
    finally:
        ledger.close()


def ingest(settings: Settings, context: StageContext) -> dict[str, Any]:
    """Load the configured source (or the synthetic generator) into ``raw.raw_events``."""
    from shopflow.ingest import ingest_source

    return as_jsonable(ingest_source(settings))


def quality_gate(settings: Settings, context: StageContext, *, layer: str,
                 ingested: dict[str, Any] | None = None) -> dict[str, Any]:
    """Gate 1 on one layer; ``GateFailed`` stops the run (the task fails, no retry).

    On ``raw`` each batch the ingest task loaded is checked on its own (a re-run that
    ingested nothing new checks the table as a whole).
    """
    from shopflow.quality import run_gate

    batch_ids = list((ingested or {}).get("batch_ids") or []) if layer == "raw" else []
    results = [run_gate(settings, layer, batch_id=b) for b in (batch_ids or [None])]
    return {
        "layer": layer,
        "passed": all(getattr(r, "passed", True) for r in results),
        "summary": "; ".join(_headline(r) for r in results),
        "batches": [as_jsonable(r) for r in results],
    }


def _headline(result: Any) -> str:
    headline = getattr(result, "headline", None)
    return str(headline() if callable(headline) else headline or result)


def dbt_layer(settings: Settings, context: StageContext, *, layer: str) -> dict[str, Any]:
    """``dbt build --select <layer>``: models and their tests for one layer.

    A failed model or ``error`` test blocks the run (a retry would fail the same way).
    """
    from shopflow.transform import run_dbt

    result = run_dbt(settings, command="build", select=layer)
    failures = [f"{n.resource_type} {n.name}: {n.status} {n.message or ''}".strip()
                for n in getattr(result, "failures", [])]
    summary = {
        "layer": layer,
        "success": bool(getattr(result, "success", True)),
        "seconds": round(float(getattr(result, "elapsed_seconds", 0.0)), 3),
        "status_counts": result.status_counts() if hasattr(result, "status_counts") else {},
        "failures": failures,
    }
    if not summary["success"]:
        raise PipelineBlocked(f"dbt build --select {layer} failed: " + "; ".join(failures[:5]))
    return summary


def publish_marts(settings: Settings, context: StageContext) -> dict[str, Any]:
    """Make the gated marts the ones Feast and training read."""
    from shopflow.transform import publish_marts as publish

    return as_jsonable(publish(settings)) or {"published": True}


def feast_apply(settings: Settings, context: StageContext) -> dict[str, Any]:
    """Register entities, views and feature services (idempotent)."""
    import shopflow.features as features

    return as_jsonable(features.apply(settings)) or {"applied": True}


def feast_materialize(settings: Settings, context: StageContext, *,
                      incremental: bool = False) -> dict[str, Any]:
    """Load the latest feature values into the online store.

    Materialization is incremental (from each view's watermark minus the configured
    overlap), so the training run and the hourly features DAG share one code path;
    ``incremental`` only labels the record.
    """
    from shopflow.features import materialize

    result = materialize(settings)
    summary = as_jsonable(result) or {}
    for name in ("entities", "seconds", "rows_per_second"):
        value = getattr(result, name, None)
        if value is not None:
            summary[name] = as_jsonable(value)
    summary["incremental"] = incremental
    return summary


# ---- registry of stages ----------------------------------------------------------------
def _training_stages() -> dict[str, Callable[..., dict[str, Any]]]:
    from shopflow.pipeline import model_stages, recommend_stages

    return {
        "training_set": model_stages.training_set,
        "train_candidate": model_stages.train_candidate,
        "evaluate": model_stages.evaluate,
        "champion_gate": model_stages.champion_gate,
        "register": model_stages.register,
        "deploy": model_stages.deploy,
        "post_deploy_check": model_stages.post_deploy_check,
        "rollback": model_stages.rollback,
        "train_recommender": recommend_stages.train_recommender,
    }


def _monitoring_stages() -> dict[str, Callable[..., dict[str, Any]]]:
    from shopflow.monitoring import stages as monitoring

    return {
        "feature_drift": monitoring.feature_drift,
        "prediction_drift": monitoring.prediction_drift,
        "live_gate": monitoring.live_gate,
        "drift_verdict": monitoring.drift_verdict,
    }


class _Stages(dict[str, Callable[..., dict[str, Any]]]):
    """Stage name -> function; model and monitoring stages load on first use."""

    def __missing__(self, key: str) -> Callable[..., dict[str, Any]]:
        for loader in (_training_stages, _monitoring_stages):
            loaded = loader()
            if key in loaded:
                self.update(loaded)
                return loaded[key]
        raise KeyError(f"unknown stage {key!r}")


STAGES: dict[str, Callable[..., dict[str, Any]]] = _Stages(
    plan=plan,
    ingest=ingest,
    quality_gate=quality_gate,
    dbt_layer=dbt_layer,
    publish_marts=publish_marts,
    feast_apply=feast_apply,
    feast_materialize=feast_materialize,
)
