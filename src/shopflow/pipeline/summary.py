"""The end-of-run summary of ``shopflow pipeline run``: stages, gates, leaderboard, decision,
and the recommender's leaderboard and decision when the run trained one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shopflow.pipeline.runner import PipelineRun

GATE_STAGES = ("quality_gate", "champion_gate", "post_deploy_check")
RECOMMENDER_STAGE = "train_recommender"
RECOMMENDER_COLUMNS = ("recall@10", "ndcg@10")


def summary_dict(run: PipelineRun) -> dict[str, Any]:
    """The summary as JSON-able data (``--json``)."""
    stages = []
    for task in run.tasks:
        record = task.record
        stages.append({
            "task": record.stage if record and task.map_index >= 0 else task.label,
            "stage": record.stage if record else None,
            "state": task.state,
            "status": record.status if record else None,
            "seconds": round(task.seconds, 3) if task.seconds is not None else None,
            "error": record.error if record else None,
        })
    gates = {}
    for task in run.tasks:  # in run order
        record = task.record
        if record is None or record.stage.split("[")[0] not in GATE_STAGES:
            continue
        verdict = {"success": "pass", "blocked": "blocked"}.get(record.status, record.status)
        if record.stage == "post_deploy_check" and _is_pending(record.error):
            verdict = "pending"
        if record.stage == "champion_gate" and record.status == "success":
            promote = ((record.result or {}).get("decision") or {}).get("promote")
            verdict = "promote" if promote else "reject"
        gates[record.stage] = {"status": verdict, "result": record.result,
                               "error": record.error}
    recommendations = _recommendations(run)
    if recommendations is not None and recommendations["status"] != "skipped":
        verdict = recommendations["status"]
        if verdict == "success":
            verdict = "promote" if (recommendations["decision"] or {}).get("promote") \
                else "reject"
        gates["recommender_gate"] = {"status": verdict,
                                     "result": {"decision": recommendations["decision"]},
                                     "error": recommendations["error"]}
    evaluation = run.records.get("evaluate")
    decision = run.records.get("champion_gate")
    plan = run.records.get("plan")
    return {
        "dag_id": run.dag_id,
        "run_id": run.run_id,
        "state": run.state,
        "seconds": round(run.seconds, 1),
        "stages": stages,
        "gates": gates,
        "leaderboard": (evaluation.result or {}).get("leaderboard", []) if evaluation else [],
        "decision": (decision.result or {}).get("decision") if decision else None,
        "recommendations": recommendations,
        "blocked": [r.stage for r in run.blocked],
        "deploy_pending": deploy_pending(run),
        "failed_tasks": [t.label for t in run.failed_tasks],
        "queued": (plan.result or {}).get("queued") if plan else None,
    }


def format_summary(run: PipelineRun) -> str:
    """A human-readable table of the run."""
    data = summary_dict(run)
    failed = run.failed_tasks
    note = f" ({len(failed)} task(s) failed: {', '.join(t.label for t in failed)})" \
        if failed and run.succeeded else ""
    state = "DEPLOY PENDING" if data["deploy_pending"] else run.state.upper()
    lines = [f"{run.dag_id} run {run.run_id}: {state}{note} in {run.seconds:.1f}s", ""]
    if data["queued"]:
        lines[1:1] = [f"note: this run {data['queued'].get('note', 'waited in the queue')}"]
    lines.append(f"{'stage':<32} {'state':<16} {'seconds':>8}  note")
    for stage in data["stages"]:
        seconds = f"{stage['seconds']:.1f}" if stage["seconds"] is not None else "-"
        state = stage["status"] or stage["state"]
        note = (stage["error"] or "")[:100]
        lines.append(f"{stage['task']:<32} {state:<16} {seconds:>8}  {note}")
    if data["gates"]:
        lines += ["", "gates:"]
        for label, gate in data["gates"].items():
            lines.append(f"  {label:<30} {gate['status'].upper():<8} {_gate_note(gate)}")
    if data["leaderboard"]:
        lines += ["", "leaderboard (same out-of-time rows):"]
        metric_names = sorted({m for row in data["leaderboard"]
                               for m in (row.get("metrics") or {})
                               if m in ("roc_auc", "pr_auc", "log_loss", "brier")})
        header = f"  {'family':<10} {'version':<34}" + "".join(f" {m:>9}" for m in metric_names)
        lines.append(header)
        for row in data["leaderboard"]:
            metrics = row.get("metrics") or {}
            cells = "".join(f" {_fmt(metrics.get(m)):>9}" for m in metric_names)
            lines.append(f"  {str(row.get('family')):<10} {str(row.get('version')):<34}{cells}")
    decision = data["decision"]
    if decision:
        if decision.get("promote"):
            verdict = "PROMOTED" + (" (forced)" if decision.get("forced") else "")
        else:
            verdict = "REJECTED (production unchanged)"
        lines += ["", f"decision: {verdict}: {decision.get('family')} "
                      f"{decision.get('version') or ''} — {decision.get('reason', '')}"]
    lines += _recommendation_lines(data["recommendations"])
    if data["deploy_pending"]:
        lines += ["", "deploy pending: " + data["deploy_pending"]["message"]]
    elif data["blocked"]:
        lines += ["", "blocked by: " + ", ".join(data["blocked"])]
    return "\n".join(lines)


def _is_pending(error: str | None) -> bool:
    return bool(error) and str(error).startswith("DeployPending")


def deploy_pending(run: PipelineRun) -> dict[str, Any] | None:
    """The run's pending deploy (gate 3 found no service), or None.

    ``{"version", "production_version", "message"}``: the candidate waiting for gate 3 and
    the version production keeps until then.
    """
    record = run.records.get("post_deploy_check")
    if record is None or record.status != "blocked" or not _is_pending(record.error):
        return None
    deployed = run.records.get("deploy")
    result = (deployed.result if deployed else None) or {}
    message = str(record.error).split(": ", 1)[-1].removeprefix("deploy pending: ")
    return {"version": result.get("version"), "production_version":
            result.get("production_version"), "message": message}


def _recommendations(run: PipelineRun) -> dict[str, Any] | None:
    """The recommender branch's outcome: leaderboard, decision, or why it did not run."""
    record = run.records.get(RECOMMENDER_STAGE)
    if record is None:
        return None
    result = record.result or {}
    return {
        "status": record.status,
        "leaderboard": result.get("leaderboard", []),
        "decision": result.get("decision"),
        "candidate_recall": result.get("candidate_recall"),
        "report": result.get("report"),
        "reason": result.get("reason"),  # a skipped stage says why
        "error": record.error,
    }


def _recommendation_lines(data: dict[str, Any] | None) -> list[str]:
    if data is None:
        return []
    if data["status"] == "skipped":
        return ["", f"recommendations: skipped ({data.get('reason') or 'switched off'})"]
    if data["status"] != "success":
        return ["", f"recommendations: {data['status'].upper()}: {(data['error'] or '')[:160]}"]
    lines = ["", "recommendations leaderboard (same held-out cutoffs):",
             f"  {'model':<12}" + "".join(f" {c:>10}" for c in RECOMMENDER_COLUMNS)]
    for row in data["leaderboard"]:
        metrics = row.get("metrics") or {}
        mark = " *" if row.get("winner") else ""
        cells = "".join(f" {_fmt(metrics.get(c)):>10}" for c in RECOMMENDER_COLUMNS)
        lines.append(f"  {str(row.get('model')) + mark:<12}{cells}")
    decision = data["decision"] or {}
    if decision.get("promote"):
        verdict = "PROMOTED"
    elif decision.get("version") is None:
        verdict = "NOT STORED (dry run)"
    else:
        verdict = "REJECTED (recommender unchanged)"
    lines.append(f"recommender decision: {verdict}: {decision.get('family')} "
                 f"{decision.get('version') or ''} — {decision.get('reason', '')}")
    return lines


def _gate_note(gate: dict[str, Any]) -> str:
    if gate.get("error"):
        return str(gate["error"])[:120]
    result = gate.get("result") or {}
    for key in ("summary", "reason", "message"):
        if result.get(key):
            return str(result[key])[:120]
    decision = result.get("decision")
    if isinstance(decision, dict) and decision.get("reason"):
        return str(decision["reason"])[:120]
    return ""


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"
