"""Model stages of the training DAG: training set, candidates, evaluation, gates 2 and 3.

They wrap :mod:`shopflow.training.pipeline` (the same steps ``shopflow train`` runs in one
call) and :mod:`shopflow.deploy`. Large things never travel through XCom: the training
set is a Parquet file and the evaluation and gate-2 outcome are JSON files in the run's
folder; XCom carries their paths, versions and a small leaderboard.

A dry run trains and evaluates but writes nothing to the registry or ledger, so its
models exist only in memory; to cross task boundaries they are pickled into the run's
folder (``dry_models/``) and read back by the evaluation and gate tasks.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shopflow import atomic
from shopflow.faults import crash_point
from shopflow.jsonable import jsonable
from shopflow.pipeline.runs import run_dir
from shopflow.pipeline.vocabulary import PipelineBlocked, StageSkipped

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd

    from shopflow.pipeline.vocabulary import StageContext, StageResult
    from shopflow.settings import Settings
    from shopflow.training.pipeline import EvaluationResult

logger = logging.getLogger(__name__)

LEADERBOARD_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "lift_top_decile", "ece")


def _dry_run(context: StageContext) -> bool:
    return bool(context.resolved.get("dry_run"))


def _training_set_path(settings: Settings, context: StageContext, service: str) -> Path:
    return run_dir(settings, context.run_id) / f"training_set-{service}.parquet"


def build_training_frame(settings: Settings, service: str) -> pd.DataFrame:
    """Point-in-time training rows of ``service`` for every labelled (user, cutoff).

    The rows come in the canonical key order (the retrieval keeps its input's order, and
    sorting the three entity columns is cheap), so training, evaluation and the gate
    use the stored set as it is instead of each sorting a copy of every column.
    """
    from shopflow.features import build_training_set, load_label_entities
    from shopflow.training.split import key_ordered

    frame: pd.DataFrame = build_training_set(settings, key_ordered(load_label_entities(settings)),
                                             feature_service=service)
    return frame


def _frame_for(settings: Settings, context: StageContext) -> Callable[[str], pd.DataFrame]:
    """``training_frame_for``: the run's saved set when it has it, else built via Feast."""
    cache: dict[str, pd.DataFrame] = {}

    def frame_for(service: str) -> pd.DataFrame:
        if service not in cache:
            path = _training_set_path(settings, context, service)
            cache[service] = (read_training_set(path) if path.is_file()
                              else build_training_frame(settings, service))
        return cache[service]

    return frame_for


#: Rows per Parquet row group of a stored training set: Arrow converts one slice at a
#: time instead of holding a second copy of millions of rows while the file is written.
WRITE_ROWS = 500_000


def write_training_set(frame: pd.DataFrame, path: Path) -> None:
    """``frame.to_parquet(path, index=False)`` (atomically), a slice at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with atomic.atomic_path(path) as tmp:
        if len(frame) <= WRITE_ROWS:
            frame.to_parquet(tmp, index=False)
            return
        schema = pa.Schema.from_pandas(frame, preserve_index=False)
        with pq.ParquetWriter(tmp, schema) as writer:
            for start in range(0, len(frame), WRITE_ROWS):
                writer.write_table(pa.Table.from_pandas(
                    frame.iloc[start:start + WRITE_ROWS], schema=schema, preserve_index=False))


def read_training_set(path: Path) -> pd.DataFrame:
    """A stored training set, as ``pd.read_parquet`` reads it (same columns, dtypes and
    values) but freeing each Arrow column once converted (``self_destruct``), so the read
    peaks near one copy of the data instead of two."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    frame: pd.DataFrame = table.to_pandas(self_destruct=True, split_blocks=True)
    del table  # unusable after self_destruct; its buffers are the frame's now
    return frame


def training_set(settings: Settings, context: StageContext) -> StageResult:
    """Build the run's training set once and keep it as Parquet for the candidate tasks."""
    service = settings.features.feature_service
    frame = build_training_frame(settings, service)
    path = _training_set_path(settings, context, service)
    write_training_set(frame, path)
    cutoffs = sorted({str(t) for t in frame["event_timestamp"]}) if len(frame) else []
    return {
        "path": str(path),
        "feature_service": service,
        "rows": len(frame),
        "columns": len(frame.columns),
        "positive_rate": round(float(frame["label"].mean()), 6) if len(frame) else None,
        "cutoffs": len(cutoffs),
        "first_cutoff": cutoffs[0] if cutoffs else None,
        "last_cutoff": cutoffs[-1] if cutoffs else None,
    }


def _dry_model_path(settings: Settings, context: StageContext, version: str) -> Path:
    folder = run_dir(settings, context.run_id) / "dry_models"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{version}.pkl"


def train_candidate(settings: Settings, context: StageContext, *, family: str
                    ) -> StageResult:
    """Search, fit and save one family (registry + ledger candidate row).

    Idempotent per run: a retried or cleared task whose family was already trained and
    saved in this run returns that candidate instead of registering a second one.
    """
    from shopflow.training.pipeline import train_family

    dry = _dry_run(context)
    done = run_dir(settings, context.run_id) / "candidates" / f"{family}.json"
    previous = _read_json(done) if not dry else None
    if previous is not None and _in_registry(settings, str(previous.get("version"))):
        logger.info("%s already trained in this run as %s: reusing it", family,
                    previous["version"])
        return previous
    frame = _frame_for(settings, context)(settings.features.feature_service)
    result = train_family(settings, family, frame, context.run_id,
                          feature_service=settings.features.feature_service, dry_run=dry)
    if dry and result.model is not None:
        atomic.write_bytes(_dry_model_path(settings, context, result.version),
                           pickle.dumps(result.model, protocol=pickle.HIGHEST_PROTOCOL))
    data = result.to_dict()  # small: metrics, params, trials; the model is in the registry
    if not dry:
        atomic.write_json(done, data)
    return data


def _read_json(path: Path) -> dict[str, Any] | None:
    """A run file, or None when missing or unreadable (a torn file from before atomic
    writes is redone, never a reason for every retry to fail)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _in_registry(settings: Settings, version: str) -> bool:
    from shopflow.registry import ModelLoadError, model_info

    try:
        model_info(settings, version)
    except ModelLoadError:
        return False
    return True


def _with_dry_models(settings: Settings, context: StageContext, versions: list[str]
                    ) -> dict[str, Any]:
    models = {}
    for version in versions:
        path = _dry_model_path(settings, context, version)
        if path.is_file():
            with path.open("rb") as handle:
                models[version] = pickle.load(handle)  # our own run folder, our own pickles
    return models


def _evaluation_path(settings: Settings, context: StageContext) -> Path:
    return run_dir(settings, context.run_id) / "evaluation.json"


def _gate_path(settings: Settings, context: StageContext) -> Path:
    return run_dir(settings, context.run_id) / "gate2.json"


def evaluate(settings: Settings, context: StageContext, *,
             candidates: list[dict[str, Any]]) -> StageResult:
    """Score every candidate on the same out-of-time rows; pick the winner on validation."""
    from shopflow.training.pipeline import CandidateResult, evaluate_candidates

    results = [CandidateResult.from_dict(c) for c in candidates if c]
    if not results:
        raise PipelineBlocked("no candidate was trained: every family failed")
    dry = _dry_run(context)
    if dry:
        models = _with_dry_models(settings, context, [r.version for r in results])
        for result in results:
            result.model = models.get(result.version)
    frame = _frame_for(settings, context)(settings.features.feature_service)
    evaluation = evaluate_candidates(settings, results, frame, run_id=context.run_id,
                                     dry_run=dry)
    path = atomic.write_json(_evaluation_path(settings, context), evaluation.to_dict())
    return {
        "evaluation_path": str(path),
        "winner": evaluation.winner,
        "baseline": evaluation.baseline,
        "leaderboard": leaderboard(evaluation, primary_metric=settings.gate.primary_metric),
    }


def leaderboard(evaluation: EvaluationResult, *, primary_metric: str = "roc_auc"
                ) -> list[dict[str, Any]]:
    """Candidates best first by the test ``primary_metric``, with the headline metrics.

    Best first means the metric's own direction (highest ROC AUC, lowest log loss), the
    same order gate 2 judges by; a candidate without a finite value of it goes last.
    """
    from shopflow.evaluation.metrics import higher_is_better

    shown = LEADERBOARD_METRICS if primary_metric in LEADERBOARD_METRICS \
        else (primary_metric, *LEADERBOARD_METRICS)
    rows = []
    for e in evaluation.evaluations:
        rows.append({
            "version": e.version,
            "family": e.family,
            "winner": e.version == evaluation.winner,
            "metrics": {k: e.metrics.get(k) for k in shown if k in e.metrics},
            "validation_metrics": {k: v for k, v in (e.validation_metrics or {}).items()
                                   if k in shown},
        })
    sign = -1.0 if higher_is_better(primary_metric) else 1.0

    def best_first(row: dict[str, Any]) -> tuple[bool, float]:
        value = row["metrics"].get(primary_metric)
        missing = not isinstance(value, int | float) or not math.isfinite(value)
        return missing, 0.0 if missing else sign * float(value)

    rows.sort(key=best_first)
    ordered: list[dict[str, Any]] = jsonable(rows)
    return ordered


def champion_gate(settings: Settings, context: StageContext, *,
                  evaluation: dict[str, Any]) -> StageResult:
    """Gate 2: the winner vs production on identical rows; writes the run's HTML report."""
    from shopflow.evaluation.report import write_report
    from shopflow.training.pipeline import EvaluationResult, decide

    resolved = context.resolved
    loaded = EvaluationResult.from_dict(json.loads(Path(evaluation["evaluation_path"])
                                                   .read_text()))
    if _dry_run(context):
        loaded.models = _with_dry_models(settings, context,
                                         [e.version for e in loaded.evaluations])
    outcome = decide(settings, loaded, training_frame_for=_frame_for(settings, context),
                     actor=context.actor, force_promote=bool(resolved.get("force_promote")),
                     force_reason=resolved.get("force_reason"))
    atomic.write_json(_gate_path(settings, context), outcome.to_dict())
    evaluations = list(loaded.evaluations)
    if outcome.champion is not None:
        evaluations.append(outcome.champion)
    report = write_report(settings, context.run_id, evaluations, winner=loaded.winner,
                          decision=outcome.decision, split=loaded.split, trials=loaded.trials,
                          training=loaded.training, age_curve=loaded.age_curve)
    decision = outcome.decision
    return {
        "decision": {
            "promote": decision.promote,
            "forced": decision.forced,
            "gate_passed": decision.gate_passed,
            "version": decision.challenger_version,
            "family": decision.challenger_family,
            "reference_role": decision.reference_role,
            "reference_version": decision.reference_version,
            "primary_metric": decision.primary_metric,
            "reason": decision.reason,
        },
        "gate_path": str(_gate_path(settings, context)),
        "report": str(report),
    }


def register(settings: Settings, context: StageContext, *,
             decision: dict[str, Any]) -> StageResult:
    """Record gate 2's decision in the ledger (a promotion nominates the ledger's candidate;
    production moves when gate 3 passes, see :func:`deploy`).

    On a promotion, also keeps what monitoring needs: the training reference (features and
    scores) and the data watermark at which the model went to production.
    """
    from shopflow.training.pipeline import record_decision

    if _dry_run(context):
        raise StageSkipped("dry run: nothing registered, production untouched")
    verdict = decision["decision"]
    recorded = _recorded_decision(settings, context, verdict["version"])
    if recorded is not None:  # a retry after the ledger write: do not decide twice
        logger.info("decision on %s already recorded for this run", verdict["version"])
        return recorded
    outcome = json.loads(Path(decision["gate_path"]).read_text())
    # What monitoring needs is written *before* the ledger moves the production alias: a
    # crash in between leaves files for a version that is not (yet) production, harmless,
    # never a production model without its reference and watermark.
    monitoring = remember_for_monitoring(settings, verdict["version"]) \
        if verdict["promote"] else {}
    crash_point("inside:register")
    previous = record_decision(settings, outcome["decision"], run_id=context.run_id,
                               pending_deploy=True)
    result = {"promoted": bool(verdict["promote"]), "version": verdict["version"],
              "previous_version": previous, "reason": verdict["reason"], **monitoring}
    atomic.write_json(_registered_path(settings, context), result)
    return result


def _registered_path(settings: Settings, context: StageContext) -> Path:
    return run_dir(settings, context.run_id) / "registered.json"


def _recorded_decision(settings: Settings, context: StageContext, version: str
                       ) -> dict[str, Any] | None:
    """This run's register result, if its decision on ``version`` is already in the ledger."""
    from shopflow.ledger import Ledger

    ledger = Ledger(settings.ledger_url)
    try:
        events = [e for e in ledger.events(version=version)
                  if e.kind in ("promotion", "rejection")
                  and e.details.get("run_id") == context.run_id]
    finally:
        ledger.close()
    if not events:
        return None
    registered = _read_json(_registered_path(settings, context))
    if registered is not None:
        return registered
    event = events[-1]
    return {"promoted": event.kind == "promotion", "version": version,
            "previous_version": event.previous_version, "reason": event.reason}


def remember_for_monitoring(settings: Settings, version: str) -> dict[str, Any]:
    """Keep what monitoring judges a new production model by (its training reference and
    the data watermark at deployment); the register stage and an A/B promotion call it."""
    from shopflow.monitoring.reference import (
        labelled_reference,
        record_deployment,
        save_reference,
    )
    from shopflow.registry import load_model
    from shopflow.transform.publish import current_watermark

    watermark = current_watermark(settings)
    record_deployment(settings, version, data_watermark=watermark)
    try:
        # the labelled rows before the watermark, sampled; only the sample is scored
        sample = labelled_reference(settings, before=watermark)
        model = load_model(settings, version)
        path = save_reference(settings, version, sample, model.predict_proba(sample))
    except Exception as exc:  # monitoring rebuilds it; never fail a promotion for this
        logger.warning("could not save the monitoring reference of %s: %s", version, exc)
        return {"data_watermark": watermark, "reference": None}
    return {"data_watermark": watermark, "reference": str(path)}


def _service_reachable(settings: Settings) -> tuple[bool, str]:
    import httpx

    from shopflow.deploy.client import service_url

    url = service_url(settings)
    try:
        httpx.get(f"{url}/healthz", timeout=2.0)
    except httpx.HTTPError:
        return False, url
    return True, url


def deploy(settings: Settings, context: StageContext, *,
           registered: dict[str, Any]) -> StageResult:
    """Gate 3: the running service serves the candidate, is measured, and only then does
    production move (:func:`shopflow.deploy.deploy`).

    Skipped when nothing was promoted. With no service answering the deploy is pending:
    the result says so and :func:`post_deploy_check` stops the run there (not a green run);
    the candidate deploys when a service starts or with ``shopflow deploy --pending``.
    """
    from shopflow.deploy import DeployFailed
    from shopflow.deploy import deploy as deploy_version
    from shopflow.monitoring.reference import snapshot_user_ids

    if not registered.get("promoted"):
        raise StageSkipped(f"champion kept: {registered.get('reason') or 'not promoted'}")
    reachable, url = _service_reachable(settings)
    if not reachable:
        return {"failed": False, "pending": True, "version": registered["version"],
                "production_version": registered.get("previous_version"), "url": url}
    try:
        report = deploy_version(settings, registered["version"], actor=context.actor,
                                reason=f"run {context.run_id}: {registered.get('reason')}",
                                golden_user_ids=snapshot_user_ids(settings))
    except DeployFailed as exc:
        return {"failed": True, "message": str(exc), "report": exc.report.asdict()}
    return {"failed": False, "report": report.asdict()}


def post_deploy_check(settings: Settings, context: StageContext, *,
                      deployed: dict[str, Any]) -> StageResult:
    """Gate 3's verdict on the deploy's numbers (the candidate was already dropped on failure).

    A pending deploy (no service answered) ends the run as ``deploy pending``: production
    has not moved and the run is not a success until gate 3 passes.
    """
    from shopflow.deploy import DeployPending

    if deployed.get("pending"):
        raise DeployPending(
            f"deploy pending: no model service answered at {deployed.get('url')}; "
            f"{deployed.get('version')} is the candidate and production stays "
            f"{deployed.get('production_version')} until gate 3 passes. Start the service "
            "(`shopflow serve`: it deploys the candidate) or run `shopflow deploy --pending`",
            version=str(deployed.get("version")))
    if deployed.get("failed"):
        raise PipelineBlocked(f"gate 3: {deployed.get('message')}")
    report = deployed.get("report") or {}
    result: StageResult = {"status": "pass",
                           "summary": (f"{report.get('requests')} requests, error rate "
                                       f"{report.get('error_rate')}, p99 "
                                       f"{report.get('p99_ms')} ms"),
                           "report": report}
    version = report.get("version")
    if settings.serving.package and version:
        from shopflow.serving.bento import package_after_deploy

        # the winner as a Bento; a failed build is reported here, the deployment stands
        result["bento"] = package_after_deploy(settings, str(version))
    return result


def rollback(settings: Settings, context: StageContext) -> StageResult:
    """The rollback DAG: production back to a named or the previous version.

    Idempotent per run: a retried or cleared task finds its run's rollback in the ledger
    and returns it instead of rolling back a second time.
    """
    from shopflow.deploy import rollback as roll_back

    resolved = context.resolved
    result = roll_back(settings, to_version=resolved.get("version") or None,
                       reason=str(resolved["reason"]), actor=context.actor,
                       from_version=resolved.get("from_version") or None,
                       run_id=context.run_id)
    summary: StageResult = jsonable(result)
    return summary
