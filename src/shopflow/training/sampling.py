"""Weighted down-sampling of negative training rows above ``training.max_rows``.

At millions of (user, cutoff) rows the candidate fits, not the data, decide a run's
memory: every family holds the training matrix plus its own copy (a DMatrix, a LightGBM
Dataset, torch tensors). Above ``training.max_rows`` training rows, the train part (never
the validation or test rows: early stopping, the calibration map, selection and gate 2
all see every row) keeps **every positive** and a seeded, exact-size random subset of the
negatives, each kept negative weighted ``1 / keep_rate``. The weighted likelihood is then
an unbiased estimate of the full one, so a model fitted with the weights predicts the
full set's base rate (not the inflated one of the sample), and the few positives —
where the information is — are all used.

The sample depends only on the labels' order and ``training.seed``; the pipeline sorts
the frame canonically first, so the same data gives the same sample, for every family.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingSample:
    """Which training rows a fit uses, their weights, and what was done (for the report).

    ``rows`` are positions into the training labels it was drawn from (ascending);
    ``weights`` is None when nothing was sampled (every weight would be 1).
    """

    rows: np.ndarray
    weights: np.ndarray | None
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def sampled(self) -> bool:
        return self.weights is not None


def downsample_negatives(labels: np.ndarray, max_rows: int | None, *, seed: int
                         ) -> TrainingSample:
    """Keep all positives and enough negatives for ``max_rows`` rows, weighted.

    The negatives kept are an exact-size uniform draw without replacement, so their
    weights (``negatives / kept``) sum to the number of negatives exactly: the weighted
    base rate equals the full one. When the positives alone reach ``max_rows``, as many
    negatives as positives are kept (the bound is then not met; ``bound_met`` says so
    and a warning is logged): a fit needs both classes, and positive-heavy propensity
    data is not what the bound is for.

    Args:
        labels: 0/1 labels of the training rows, in the pipeline's canonical row order.
        max_rows: the bound (``training.max_rows``); None: never sample.
        seed: ``training.seed`` (mixed with a fixed tag, so the draw is its own stream).
    """
    labels = np.asarray(labels).reshape(-1)
    total = len(labels)
    positive = labels > 0
    positives = int(positive.sum())
    negatives = total - positives
    facts: dict[str, Any] = {"max_rows": max_rows, "rows_before": total,
                             "positives": positives, "negatives_before": negatives}
    if max_rows is None or total <= max_rows or negatives == 0:
        return TrainingSample(rows=np.arange(total), weights=None,
                              facts={**facts, "sampled": False, "rows_after": total,
                                     "positives_kept": positives, "negatives_kept": negatives,
                                     "negative_keep_rate": 1.0, "bound_met": True})
    keep = min(negatives, max(max_rows - positives, positives, 1))
    rng = np.random.default_rng([seed, zlib.crc32(b"training.max_rows")])
    negative_rows = np.flatnonzero(~positive)
    kept_negatives = rng.choice(negative_rows, size=keep, replace=False)
    rows = np.sort(np.concatenate([np.flatnonzero(positive), kept_negatives]))
    keep_rate = keep / negatives
    weights = np.where(positive[rows], 1.0, negatives / keep)
    bound_met = len(rows) <= max_rows
    if not bound_met:
        logger.warning("training.max_rows=%d: %d positives alone exceed half the bound; "
                       "kept %d rows (every positive and as many negatives)", max_rows,
                       positives, len(rows))
    logger.info("training rows down-sampled to %d of %d (training.max_rows=%d): all %d "
                "positives, negatives kept at rate %.4f with weight %.3f", len(rows), total,
                max_rows, positives, keep_rate, negatives / keep)
    return TrainingSample(rows=rows, weights=weights, facts={
        **facts, "sampled": True, "rows_after": int(len(rows)), "positives_kept": positives,
        "negatives_kept": int(keep), "negative_keep_rate": round(keep_rate, 6),
        "negative_weight": round(negatives / keep, 6), "bound_met": bound_met,
        "seed": seed,
    })
