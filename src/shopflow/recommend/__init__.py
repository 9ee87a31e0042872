"""Recommendations: what each shopper will buy next.

Point-in-time candidates (recent items, co-purchase neighbours, category favourites,
popular and trending items), user x item features from dbt, LightGBM lambdarank and a
PyTorch NCF ranker against a popularity baseline, gate 2 on NDCG@10, and a fast
:class:`Recommender` for serving.

Entry points (imported lazily, so ``import shopflow.recommend`` stays cheap):

* :func:`run_recommendation` -- train, evaluate, gate and store (the DAG step);
* :class:`Recommender` -- ``Recommender.load(settings).recommend(user_id, k=10)``;
* :func:`build_ranking_data`, :func:`generate_candidates`, :func:`evaluate_ranker`,
  :func:`leaderboard`, :func:`leaderboard_html` -- the pieces.
"""

from __future__ import annotations

from typing import Any

from shopflow.lazy_exports import lazy_export

_EXPORTS = {
    "Recommender": "shopflow.recommend.serving",
    "RecommendationResult": "shopflow.recommend.serving",
    "RecommendedItem": "shopflow.recommend.serving",
    "RecommenderUnavailable": "shopflow.recommend.serving",
    "RecommendationRun": "shopflow.recommend.pipeline",
    "run_recommendation": "shopflow.recommend.pipeline",
    "RecommendConfig": "shopflow.recommend.dataset",
    "RankingDataError": "shopflow.recommend.dataset",
    "build_ranking_data": "shopflow.recommend.dataset",
    "CandidateConfig": "shopflow.recommend.candidates",
    "generate_candidates": "shopflow.recommend.candidates",
    "candidate_recall": "shopflow.recommend.candidates",
    "RankerModel": "shopflow.recommend.rankers",
    "train_ranker": "shopflow.recommend.rankers",
    "evaluate_ranker": "shopflow.recommend.evaluate",
    "leaderboard": "shopflow.recommend.metrics",
    "leaderboard_html": "shopflow.recommend.metrics",
    "RankingGateDecision": "shopflow.recommend.gate",
    "decide_recommender": "shopflow.recommend.gate",
    "recommender_ledger": "shopflow.recommend.gate",
    "MODEL_NAME": "shopflow.recommend.store",
    "RecommenderLoadError": "shopflow.recommend.store",
    "list_recommenders": "shopflow.recommend.store",
    "load_recommender": "shopflow.recommend.store",
    "save_recommender": "shopflow.recommend.store",
    "build_snapshot": "shopflow.recommend.snapshot",
    "ServingSnapshot": "shopflow.recommend.snapshot",
    "RecommendDataError": "shopflow.recommend.data",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    return lazy_export(__name__, _EXPORTS, name)
