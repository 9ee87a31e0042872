"""Turn a ranker into top-K lists on held-out cutoffs and score them.

Known buyers get the ranker's order of their candidates; buyers with no history before
the cutoff get the popularity list (what serving answers for a cold start), so every
model is measured on *all* buyers of the cutoff and the cold share is the same for all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from shopflow.recommend.metrics import DEFAULT_KS, evaluate_lists

if TYPE_CHECKING:
    import pandas as pd

    from shopflow.recommend.dataset import CutoffData
    from shopflow.recommend.rankers import RankerModel


def top_k(frame: pd.DataFrame, scores: np.ndarray, k: int) -> pd.DataFrame:
    """The best ``k`` rows per (user, cutoff) by score (ties: item_id), with ``rank``."""
    ranked = frame[["user_id", "cutoff_time", "item_id"]].assign(score=scores)
    ranked = ranked.sort_values(["cutoff_time", "user_id", "score", "item_id"],
                                ascending=[True, True, False, True], kind="mergesort")
    ranked["rank"] = ranked.groupby(["cutoff_time", "user_id"], sort=False).cumcount() + 1
    return ranked[ranked["rank"] <= k]


def recommendation_lists(model: RankerModel, cutoff: CutoffData, k: int) -> pd.DataFrame:
    """Top-``k`` lists of every buyer of one cutoff (cold ones from popularity)."""
    import pandas as pd

    lists = top_k(cutoff.frame, model.score(cutoff.frame), k)
    cold = cutoff.slices.loc[~cutoff.slices["known"], "user_id"].to_numpy()
    if len(cold):
        items, scores = cutoff.stats.popular_items(k)
        fallback = pd.DataFrame({
            "user_id": np.repeat(cold, len(items)),
            "cutoff_time": cutoff.cutoff,
            "item_id": np.tile(items, len(cold)),
            "score": np.tile(scores, len(cold)),
            "rank": np.tile(np.arange(1, len(items) + 1), len(cold)),
        })
        lists = pd.concat([lists, fallback], ignore_index=True)
    return lists


def evaluate_ranker(model: RankerModel, cutoffs: list[CutoffData],
                    ks: tuple[int, ...] = DEFAULT_KS) -> dict[str, float]:
    """Ranking metrics of ``model`` over the buyers of ``cutoffs`` (see metrics.py)."""
    import pandas as pd

    k = max(ks)
    lists = pd.concat([recommendation_lists(model, c, k) for c in cutoffs], ignore_index=True)
    labels = pd.concat([c.labels for c in cutoffs], ignore_index=True)
    slices = pd.concat([c.slices for c in cutoffs], ignore_index=True)
    catalogue = len(set().union(*(set(c.stats.item_ids) for c in cutoffs)))
    metrics = evaluate_lists(lists, labels, slices=slices, catalogue=catalogue, ks=ks)
    metrics["cold_share"] = float((~slices["known"]).mean()) if len(slices) else 0.0
    return metrics
