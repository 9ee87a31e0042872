"""The recommendation step end to end: data, candidates, rankers, leaderboard, gate, store.

``run_recommendation(settings)`` is what the training DAG (or a person) calls after the
dbt marts are built: it measures candidate recall, trains every ranker family on the
same out-of-time split, scores them and the popularity baseline on the same held-out
cutoffs, re-scores the current champion there, runs gate 2 on NDCG@10, stores the
validation winner with its serving snapshot, records everything in the ledger (model
``recommender``) and writes an HTML section for the run report.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shopflow.recommend.dataset import RecommendConfig, build_ranking_data
from shopflow.recommend.metrics import PRIMARY_METRIC, leaderboard, leaderboard_html
from shopflow.recommend.rankers import popularity_model, train_ranker
from shopflow.settings import RANKER_FAMILIES

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

    from shopflow.recommend.gate import RankingGateDecision
    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

ACTOR = "shopflow-recommend"


@dataclass
class RecommendationRun:
    """What one recommendation run produced.

    Attributes:
        leaderboard: one row per model (and the champion), best NDCG@10 first.
        metrics: model name -> test metrics (``popularity``, ``lightgbm``, ``torch``,
            ``champion``).
        validation: model name -> validation NDCG@10 etc. (the winner is chosen on it).
        candidate_recall: recall of the candidate sets on the test cutoffs.
        winner: family of the validation winner.
        decision: gate 2.
        version: the stored winner's version (None when ``save`` was off).
        report_path: the HTML section written to ``reports_dir``.
        split: cutoffs and sizes of train/validation/test.
        seconds: wall time per stage.
    """

    leaderboard: pd.DataFrame
    metrics: dict[str, dict[str, float]]
    validation: dict[str, dict[str, float]]
    candidate_recall: dict[str, float]
    winner: str
    decision: RankingGateDecision
    version: str | None
    report_path: Path | None
    split: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)

    def html(self) -> str:
        """The report section (same as the file at ``report_path``)."""
        return leaderboard_html(self.leaderboard, title="Recommendations: what each shopper buys next",
                                notes=_notes(self))


def _notes(run: RecommendationRun) -> dict[str, Any]:
    recall = run.candidate_recall
    by_source = ", ".join(f"{k.split(':')[1]} {v:.3f}" for k, v in recall.items()
                          if k.startswith("recall_items:"))
    return {
        "candidate recall (test)": f"{recall['recall_items']:.3f} of bought items, "
                                   f"{recall['candidates_per_user']:.0f} candidates per buyer",
        "candidate recall by source": by_source,
        "winner (validation ndcg@10)": run.winner,
        "gate 2": ("promoted: " if run.decision.promote else "rejected: ") + run.decision.reason,
        "version": run.version or "-",
        "test cutoffs": ", ".join(run.split["test"]["cutoffs"]),
        "buyers evaluated": int(run.metrics["popularity"].get("users", 0)),
        "cold-start share": f"{run.metrics['popularity'].get('cold_share', 0.0):.3f}",
    }


def run_recommendation(
    settings: Settings,
    *,
    families: tuple[str, ...] = RANKER_FAMILIES,
    config: RecommendConfig | None = None,
    save: bool = True,
    force_promote: bool = False,
    actor: str = ACTOR,
    run_id: str | None = None,
) -> RecommendationRun:
    """Train, evaluate, gate and store recommenders from the built warehouse.

    Args:
        settings: the run's settings (task durations, split sizes, gate margin, home).
        families: ranker families to train (``lightgbm``, ``torch``).
        config: candidate and sampling sizes.
        save: store the winner (with its serving snapshot) and record it in the ledger.
        force_promote: promote the winner even if the gate rejects it (logged as forced).
        actor: who is recorded in the ledger.
        run_id: recorded with the candidate.

    Raises:
        RankingDataError: too little history for an out-of-time split.
        RecommendDataError: the warehouse lacks a table (dbt not run).
    """
    import pandas as pd

    from shopflow.recommend.candidates import candidate_recall
    from shopflow.recommend.evaluate import evaluate_ranker
    from shopflow.recommend.gate import decide_recommender, recommender_ledger

    unknown = sorted(set(families) - set(RANKER_FAMILIES))
    if unknown or not families:
        raise ValueError(f"unknown ranker families {unknown or families}; use {RANKER_FAMILIES}")
    config = config or RecommendConfig(seed=settings.training.seed)
    seconds: dict[str, float] = {}
    tick = time.perf_counter()
    # no event frame: each cutoff (and the serving snapshot) reads its own window
    data = build_ranking_data(settings, config=config)
    seconds["data"] = time.perf_counter() - tick

    recall = candidate_recall(
        pd.concat([c.candidates_all for c in data.test], ignore_index=True),
        pd.concat([c.labels for c in data.test], ignore_index=True),
    )
    logger.info("candidate recall on test cutoffs: %s", recall)

    models = {"popularity": popularity_model()}
    for family in families:
        tick = time.perf_counter()
        models[family] = train_ranker(family, data, seed=config.seed, threads=config.threads)
        seconds[f"train_{family}"] = time.perf_counter() - tick
    tick = time.perf_counter()
    test = {name: evaluate_ranker(model, data.test) for name, model in models.items()}
    validation = {name: evaluate_ranker(model, data.validation, ks=(10,)) for name, model in
                  models.items()}
    winner = max(families, key=lambda f: (validation[f][PRIMARY_METRIC], f == families[0]))

    ledger = recommender_ledger(settings)
    try:
        champion_metrics = None
        production = ledger.production()
        if production is not None:
            champion_metrics = _score_champion(settings, production.version, data)
            if champion_metrics is not None:
                test["champion"] = champion_metrics
        seconds["evaluate"] = time.perf_counter() - tick
        decision = decide_recommender(test[winner], champion=champion_metrics,
                                      baseline=test["popularity"],
                                      min_improvement=settings.gate.min_improvement)
        logger.info("gate 2 (%s): %s", winner, decision.reason)
        split = data.describe()
        # the ranking frames (up to max_eval_users_per_cutoff buyers x their candidates
        # per cutoff) are not needed past here: free them before the snapshot ranks
        # every known user
        del data

        version = None
        if save:
            from shopflow.recommend.snapshot import build_snapshot
            from shopflow.recommend.store import recommender_digests, save_recommender

            tick = time.perf_counter()
            snapshot = build_snapshot(settings, models[winner], config=config.candidates)
            metadata = {"metrics": test[winner], "validation": validation[winner],
                        "candidate_recall": recall, "split": split,
                        "config": config.describe(), "run_id": run_id or ""}
            version = save_recommender(settings, models[winner], snapshot, metadata=metadata)
            seconds["snapshot"] = time.perf_counter() - tick
            ledger.record_candidate(
                version=version, family=winner, metrics=test[winner],
                params=models[winner].params, feature_service="recommend_v1",
                data_window=(split["train"]["cutoffs"][0], split["test"]["cutoffs"][-1]),
                run_id=run_id, artefacts=recommender_digests(settings, version),
            )
            details = {"model": "shopflow-recommender", "run_id": run_id,
                       "decision": decision.details,
                       "reference": decision.reference_name,
                       "reference_metrics": {k: decision.reference.get(k) for k in
                                             ("ndcg@10", "recall@10")}}
            if decision.promote or force_promote:
                reason = decision.reason if decision.promote else f"forced: {decision.reason}"
                ledger.promote(version, actor=actor, reason=reason,
                               details={**details, "forced": not decision.promote})
            else:
                ledger.record_event(kind="rejection", version=version, reason=decision.reason,
                                    actor=actor, details=details)
    finally:
        ledger.close()

    board = leaderboard(test)
    run = RecommendationRun(leaderboard=board, metrics=test, validation=validation,
                            candidate_recall=recall, winner=winner, decision=decision,
                            version=version, report_path=None, split=split,
                            seconds=seconds)
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    path = settings.reports_dir / f"recommendations_{version or 'unsaved'}.html"
    path.write_text(run.html())
    run.report_path = path
    logger.info("recommendations leaderboard:\n%s", board.to_string(index=False))
    return run


def _score_champion(settings: Settings, version: str, data: Any) -> dict[str, float] | None:
    """The production recommender's metrics on this run's test cutoffs (None if unloadable)."""
    from shopflow.recommend.evaluate import evaluate_ranker
    from shopflow.recommend.store import RecommenderLoadError, load_recommender

    try:
        model, _, _ = load_recommender(settings, version)
    except RecommenderLoadError as exc:
        logger.warning("champion %s cannot be scored (%s); gating against the baseline", version,
                       exc)
        return None
    return evaluate_ranker(model, data.test)
