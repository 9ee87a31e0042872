"""The recommendation branch of the training DAG: train, gate and store the recommender.

``train_recommender`` runs after the marts are gated and published, beside the
propensity candidates: it calls :func:`shopflow.recommend.run_recommendation` (candidate
recall, every ranker family on the same out-of-time split, popularity baseline, the
champion re-scored, gate 2 on NDCG@10), which records its decision in the ledger under the
model ``recommender``. The running service polls that alias and hot swaps the lists
behind ``POST /recommend``.

The stage result is small (leaderboard rows, the decision, paths); the HTML section is
copied into the run folder beside the propensity report.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from typing import TYPE_CHECKING, Any

from shopflow import atomic
from shopflow.pipeline.runs import run_dir
from shopflow.pipeline.vocabulary import StageSkipped
from shopflow.settings import RANKER_FAMILIES

if TYPE_CHECKING:
    from pathlib import Path

    from shopflow.pipeline.vocabulary import StageContext, StageResult
    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

#: Leaderboard columns carried to the run summary (all of them are in the HTML report).
SUMMARY_METRICS = ("recall@10", "ndcg@10", "map@10", "hit_rate@10", "coverage@10", "users")
RECORD_FILE = "recommendations.json"


def _record_path(settings: Settings, context: StageContext) -> Path:
    return run_dir(settings, context.run_id) / RECORD_FILE


def train_recommender(settings: Settings, context: StageContext) -> StageResult:
    """Train, evaluate and gate recommenders; the decision goes to the ledger.

    Skipped when the run's ``recommend`` param is off, or when the data has too little
    history for an out-of-time ranking split (the propensity branch still runs). A dry
    run trains and evaluates but stores and records nothing. Idempotent per run: a retry
    after the ledger write returns the recorded result instead of deciding twice.

    Raises:
        StageSkipped: switched off, or too little history.
    """
    from shopflow.recommend import RankingDataError, run_recommendation

    resolved = context.resolved
    if not resolved.get("recommend", True):
        raise StageSkipped("recommendations switched off (recommend=false)")
    dry = bool(resolved.get("dry_run"))
    path = _record_path(settings, context)
    if not dry and path.is_file():
        previous: dict[str, Any] = json.loads(path.read_text())
        if previous.get("version") and _decided(settings, previous["version"]):
            logger.info("recommender %s already decided in this run", previous["version"])
            return previous
    families = tuple(resolved.get("recommend_families") or RANKER_FAMILIES)
    try:
        run = run_recommendation(settings, families=families, save=not dry,
                                 actor=context.actor, run_id=context.run_id)
    except RankingDataError as exc:
        raise StageSkipped(f"too little history for recommendations: {exc}") from exc
    result = summarize(run, dry_run=dry)
    if run.report_path is not None:
        target = run_dir(settings, context.run_id) / "recommendations.html"
        shutil.copyfile(run.report_path, target)
        result["report"] = str(target)
    atomic.write_json(path, result)
    return result


def _decided(settings: Settings, version: str) -> bool:
    from shopflow.recommend import recommender_ledger

    ledger = recommender_ledger(settings)
    try:
        return any(e.kind in ("promotion", "rejection") for e in ledger.events(version=version))
    finally:
        ledger.close()


def summarize(run: Any, *, dry_run: bool = False) -> dict[str, Any]:
    """A :class:`~shopflow.recommend.RecommendationRun` as a small JSON-able summary."""
    decision = run.decision
    promoted = bool(decision.promote) and run.version is not None and not dry_run
    rows = []
    for record in run.leaderboard.to_dict(orient="records"):
        rows.append({"model": record["model"],
                     "winner": record["model"] == run.winner,
                     "metrics": {m: _number(record.get(m)) for m in SUMMARY_METRICS}})
    return {
        "version": run.version,
        "winner": run.winner,
        "dry_run": dry_run,
        "decision": {
            "promote": promoted,
            "gate_passed": bool(decision.promote),
            "version": run.version,
            "family": run.winner,
            "reference": decision.reference_name,
            "primary_metric": decision.primary,
            "reason": decision.reason,
        },
        "leaderboard": rows,
        "candidate_recall": {k: _number(v) for k, v in run.candidate_recall.items()
                             if k in ("recall_items", "candidates_per_user")},
        "test_cutoffs": list(run.split.get("test", {}).get("cutoffs", [])),
        "seconds": {k: round(float(v), 2) for k, v in run.seconds.items()},
    }


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
