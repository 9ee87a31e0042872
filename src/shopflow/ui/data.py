"""What the Shopflow view shows, read from the ledger, the run records and the report files.

Every page is a plain dict built here, so the pages stay templates and the tests can
check the numbers without a browser. Nothing here writes: the view is a reader of the
state the pipeline keeps (``shopflow.ledger``, ``reports/runs/<run>/stages/*.json``,
``evaluation.json``, the gate reports and Data Docs), plus one action (rollback) that goes
through Airflow, not through this module.

Monitoring stage results are shown as they are stored (nested dicts and lists), so a
stage or a key added to the monitoring DAG appears without a change here.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shopflow.contract import MODELS, PROPENSITY_MODEL, RECOMMENDER_MODEL
from shopflow.ledger import Ledger, LedgerEvent, isoformat
from shopflow.pipeline.runs import read_records, safe_run_id

if TYPE_CHECKING:
    from shopflow.settings import Settings

#: the metric a model's production history is drawn with
HEADLINE_METRIC = {PROPENSITY_MODEL: "roc_auc", RECOMMENDER_MODEL: "ndcg@10"}
#: the metrics the Models page shows first (every other one is folded away)
HEADLINE_METRICS = {
    PROPENSITY_MODEL: ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "lift_top_decile"),
    RECOMMENDER_MODEL: ("ndcg@10", "recall@10", "map@10", "hit_rate@10"),
}
MONITORING_MODULE = "shopflow.pipeline.monitoring_stages"
TRAINING_STAGES = ("evaluate", "champion_gate", "train_candidate", "training_set")
ROLLBACK_STAGES = ("rollback",)


class NotFound(LookupError):
    """A run, model or file the request names does not exist (the page answers 404)."""


def _event_dict(event: LedgerEvent) -> dict[str, Any]:
    data = asdict(event)
    data["at"] = isoformat(event.at)
    data["metrics"] = event.details.get("metrics") or event.details.get("report") or {}
    return data


def check_model(model: str) -> str:
    """``model`` if Shopflow serves it.

    Raises:
        NotFound: not one of :data:`shopflow.contract.MODELS`.
    """
    if model not in MODELS:
        raise NotFound(f"unknown model {model!r}; models: {', '.join(MODELS)}")
    return model


def parse_when(text: str | None) -> datetime | None:
    """The date picker's value (``YYYY-MM-DD`` or ISO 8601, naive = UTC) as a UTC datetime.

    Raises:
        ValueError: ``at`` is not a date or a date and time (message names the field).
    """
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"at: {text!r} is not a date (YYYY-MM-DD) or an ISO date and time"
                         ) from None
    if len(text.strip()) == 10:  # a bare date: the end of that day
        when = when.replace(hour=23, minute=59, second=59)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def served_at(ledger: Ledger, model: str, when: datetime) -> dict[str, Any]:
    """Which version held production at ``when``, and the ledger row that put it there."""
    holder: LedgerEvent | None = None
    naive = when.astimezone(UTC).replace(tzinfo=None)
    for event in ledger.production_history(model=model):
        if event.at > naive:
            break
        holder = event
    return {
        "at": when.isoformat(),
        "version": holder.version if holder else None,
        "event": _event_dict(holder) if holder else None,
    }


def metric_history(ledger: Ledger, model: str) -> dict[str, Any]:
    """The headline metric of each production model, from the time it took production.

    One point per production move (promotion, deployment, rollback), valued with the
    model's recorded test metric; a version without that metric is left out.
    """
    metric = HEADLINE_METRIC.get(model, "roc_auc")
    points = []
    for event in ledger.production_history(model=model):
        record = ledger.candidate(event.version) if event.version else None
        value = (record.metrics if record else {}).get(metric)
        if isinstance(value, int | float) and math.isfinite(value):
            points.append({"at": event.at, "version": event.version, "kind": event.kind,
                           "value": float(value)})
    return {"metric": metric, "points": points}


def model_page(settings: Settings, model: str, *, when: datetime | None = None,
               limit: int = 200) -> dict[str, Any]:
    """The Models page of one model: production, pending candidate, timeline, served-at."""
    check_model(model)
    ledger = Ledger(settings.ledger_url)
    try:
        status = ledger.model_status(model=model, limit=limit)
        events = [_event_dict(e) for e in reversed(ledger.events(model=model, limit=limit))]
        history = metric_history(ledger, model)
        answer = served_at(ledger, model, when) if when is not None else None
    finally:
        ledger.close()
    return {
        "model": model,
        "models": list(MODELS),
        "production": status["production"],
        "pending": status.get("pending"),
        "candidates": status["candidates"],
        "events": events,
        "history": history,
        "served_at": answer,
        "headline_metric": history["metric"],
        "headline_metrics": HEADLINE_METRICS.get(model, (history["metric"],)),
    }


def _runs_root(settings: Settings) -> Path:
    return settings.reports_dir / "runs"


def run_kind(stages: list[str]) -> str:
    """Which DAG a run folder belongs to, from the stages it recorded."""
    from shopflow.pipeline.stages import STAGES

    names = {s.split("[")[0] for s in stages}
    if names & set(TRAINING_STAGES) or "quality_gate" in names:
        return "training"
    if names & set(ROLLBACK_STAGES):
        return "rollback"
    if any(getattr(STAGES.get(n), "__module__", "") == MONITORING_MODULE for n in names):
        return "monitoring"
    return "features" if names & {"feast_materialize", "feast_apply"} else "other"


def list_runs(settings: Settings, *, kind: str | None = None,
              limit: int = 100) -> list[dict[str, Any]]:
    """Every run folder with stage records, newest first (by the latest record's time)."""
    root = _runs_root(settings)
    runs: list[dict[str, Any]] = []
    if not root.is_dir():
        return runs
    for folder in root.iterdir():
        if not (folder / "stages").is_dir():
            continue
        records = read_records(settings, folder.name)
        if not records:
            continue
        stages = list(records)
        found = run_kind(stages)
        if kind is not None and found != kind:
            continue
        statuses = [r.status for r in records.values()]
        verdict = next((s for s in ("blocked", "failed") if s in statuses), "success")
        runs.append({
            "run": folder.name,
            "kind": found,
            "stages": len(stages),
            "status": verdict,
            "finished_at": max(r.finished_at for r in records.values()),
        })
    runs.sort(key=lambda r: str(r["finished_at"]), reverse=True)
    return runs[:limit]


def _report_link(settings: Settings, path: str | None) -> str | None:
    """A report file as a path relative to the reports folder (None if outside or gone)."""
    if not path:
        return None
    try:
        relative = Path(path).resolve().relative_to(settings.reports_dir.resolve())
    except ValueError:
        return None
    return relative.as_posix() if (settings.reports_dir / relative).is_file() else None


def _gate_reports(settings: Settings, label: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each batch of a quality-gate record with links to its HTML/JSON report and Data Docs."""
    rows = []
    for batch in result.get("batches") or []:
        if not isinstance(batch, dict):
            continue
        report = batch.get("report_path")
        html = str(Path(report).with_suffix(".html")) if report else None
        rows.append({
            "gate": label,
            "headline": batch.get("headline") or result.get("summary"),
            "success": batch.get("success"),
            "html": _report_link(settings, html),
            "json": _report_link(settings, report),
            "data_docs": _report_link(settings, batch.get("data_docs_path")),
        })
    return rows


def _of_task(label: str, task_id: str | None, task: str) -> bool:
    """Whether a stage record belongs to Airflow task ``task`` (by its recorded task id, or,
    for records written before task ids were, by the stage name)."""
    return task_id == task if task_id else label.split("[")[0] == task


def run_page(settings: Settings, run_id: str, *, task: str | None = None) -> dict[str, Any]:
    """The Runs page of one run: stages, gates with their reports, leaderboard, decision;
    with ``task`` (the task-instance tab), that task's stages are marked and shown in full.

    Raises:
        NotFound: the run wrote no stage record (unknown run, or not a Shopflow run).
    """
    folder = safe_run_id(run_id)
    records = read_records(settings, folder)
    if not records:
        raise NotFound(f"no Shopflow records for run {run_id!r} under "
                       f"{_runs_root(settings)}")
    stages = [{"stage": r.stage, "status": r.status, "seconds": round(r.seconds, 1),
               "error": r.error, "finished_at": r.finished_at,
               "of_task": bool(task) and _of_task(r.stage, r.task_id, str(task))}
              for r in records.values()]
    stages.sort(key=lambda s: str(s["finished_at"]))
    evaluate = records.get("evaluate")
    gate = records.get("champion_gate")
    gate_result = gate.result if gate else {}
    gates: list[dict[str, Any]] = []
    for label, record in records.items():
        if label.startswith("quality_gate"):
            gates += _gate_reports(settings, label, record.result or {})
            if record.status != "success" and not record.result.get("batches"):
                gates.append({"gate": label, "headline": record.error, "success": False,
                              "html": None, "json": None, "data_docs": None})
    deploy = records.get("post_deploy_check")
    recommender = records.get("train_recommender")
    return {
        "run": folder,
        "run_id": run_id,
        "kind": run_kind(list(records)),
        "stages": stages,
        "gates": gates,
        "leaderboard": (evaluate.result or {}).get("leaderboard", []) if evaluate else [],
        "decision": gate_result.get("decision"),
        "report": _report_link(settings, gate_result.get("report")),
        "gate2": _report_link(settings, gate_result.get("gate_path")),
        "post_deploy": {"status": deploy.status, "error": deploy.error,
                        "result": deploy.result} if deploy else None,
        "recommender": recommender.result if recommender else None,
        "has_curves": bool(evaluation_curves(settings, folder)),
        "task": task or "",
        "task_results": {label: r.result for label, r in records.items()
                         if task and _of_task(label, r.task_id, task)},
    }


def evaluation_curves(settings: Settings, run: str) -> list[dict[str, Any]]:
    """Each evaluated model's ROC curve and calibration bins from the run's evaluation.json."""
    path = _runs_root(settings) / safe_run_id(run) / "evaluation.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    out = []
    for evaluation in data.get("evaluations") or []:
        out.append({
            "version": evaluation.get("version"),
            "family": evaluation.get("family"),
            "roc": (evaluation.get("curves") or {}).get("roc"),
            "calibration": evaluation.get("calibration") or [],
            "roc_auc": (evaluation.get("metrics") or {}).get("roc_auc"),
        })
    return out


def monitoring_page(settings: Settings, *, limit: int = 20) -> dict[str, Any]:
    """The latest monitoring run's stage results (as stored) and the earlier runs' verdicts."""
    runs = list_runs(settings, kind="monitoring", limit=limit)
    latest = None
    if runs:
        records = read_records(settings, runs[0]["run"])
        latest = {
            "run": runs[0]["run"],
            "stages": [{"stage": r.stage, "status": r.status, "error": r.error,
                        "finished_at": r.finished_at, "result": r.result}
                       for r in sorted(records.values(), key=lambda r: r.finished_at)],
        }
    drift = feature_psi(settings, runs[0]["run"]) if runs else None
    return {"runs": runs, "latest": latest, "drift": drift}


def feature_psi(settings: Settings, run: str) -> dict[str, Any] | None:
    """PSI per feature of a monitoring run's ``feature_drift`` stage (None: not recorded)."""
    record = read_records(settings, run).get("feature_drift")
    if record is None or not isinstance((record.result or {}).get("psi"), dict):
        return None
    psi = {str(k): float(v) for k, v in record.result["psi"].items()
           if isinstance(v, int | float) and math.isfinite(v)}
    return {"psi": psi, "threshold": record.result.get("threshold"),
            "version": record.result.get("version")}


def served_file(root: Path, relative: str) -> Path:
    """A file under ``root`` (the reports folder, dbt's docs target), refusing anything outside.

    Raises:
        NotFound: no such file, or the path leaves ``root``.
    """
    base = root.resolve()
    candidate = (base / relative).resolve()
    if candidate.is_relative_to(base) and candidate.is_file():
        return candidate
    raise NotFound(f"no file {relative!r} under {root}")


def dbt_docs_dir(settings: Settings) -> Path:
    """Where the transform stage writes dbt's documentation page (:mod:`shopflow.transform.docs`)."""
    from shopflow.transform.docs import docs_dir

    return docs_dir(settings)
