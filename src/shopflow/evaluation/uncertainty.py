"""How sure a test ROC AUC is: per test cutoff, and a bootstrap 95 % interval.

One fit is evaluated on every test cutoff (``training.test_cutoffs``; the cheaper form of
a rolling origin: the model is not refitted per cutoff). The estimate is the mean of the
per-cutoff ROC AUCs; its interval is a percentile bootstrap that resamples rows *within*
each cutoff (:data:`RESAMPLES` resamples, seeded) and averages the per-cutoff values, so
with one test cutoff it is the plain row bootstrap of that cutoff's ROC AUC. On 6,000
rows at 41 % positives that interval is about ±0.013; a difference between two models
inside it is noise. (Comparing two models on the same rows is gate 2's paired test.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from shopflow.evaluation.metrics import weighted_roc_auc

if TYPE_CHECKING:
    import pandas as pd

RESAMPLES = 200
SEED = 0
#: Resample x row cells scored at once per cutoff: each of the ~8 float64 arrays the
#: AUC of a chunk needs stays near 32 MB, where all 200 resamples of a 220k-row cutoff
#: (10M events) took several GB in the evaluate stage.
CHUNK_CELLS = 4_000_000


def fast_roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC by ranks (ties counted half); NaN without both classes."""
    return float(weighted_roc_auc(y, p, np.ones((1, len(y))))[0])


def roc_auc_interval(frame: pd.DataFrame, y: np.ndarray, p: np.ndarray, *,
                     resamples: int = RESAMPLES, seed: int = SEED) -> dict[str, Any]:
    """Per-cutoff ROC AUC, their mean and a bootstrap 95 % interval of the mean."""
    import pandas as pd

    if "event_timestamp" in frame.columns:
        stamps = pd.to_datetime(frame["event_timestamp"], utc=True).to_numpy()
    else:
        stamps = np.zeros(len(frame), dtype="datetime64[ns]")
    groups = [np.flatnonzero(stamps == c) for c in np.unique(stamps)]
    aucs = [fast_roc_auc(y[rows], p[rows]) for rows in groups]
    by_cutoff: list[dict[str, Any]] = [
        {"cutoff": str(pd.Timestamp(stamps[rows[0]])), "rows": int(len(rows)),
         "positives": int(y[rows].sum()), "roc_auc": auc}
        for rows, auc in zip(groups, aucs, strict=True)
    ]
    values = [auc for auc in aucs if np.isfinite(auc)]
    result: dict[str, Any] = {
        "metric": "roc_auc", "by_cutoff": by_cutoff,
        "mean": float(np.mean(values)) if values else float("nan"),
        "ci95": [float("nan"), float("nan")], "resamples": resamples,
        "method": (f"one fit scored on {len(by_cutoff)} test cutoff(s); mean of the "
                   "per-cutoff ROC AUCs, 95% percentile bootstrap resampling rows within "
                   f"each cutoff ({resamples} resamples)"),
    }
    if not values or resamples < 2:
        return result
    rng = np.random.default_rng(seed)
    # resample counts per cutoff (chunk x rows), then the chunk's AUCs at once; the draws
    # come in the same order whatever the chunk, and each resample's AUC reads only its
    # own row of counts, so the chunk bounds memory without changing a value
    chunk = max(1, CHUNK_CELLS // max(len(rows) for rows in groups))
    per_cutoff = np.empty((resamples, len(groups)))
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        counts = [np.empty((size, len(rows))) for rows in groups]
        for i in range(size):
            for g, rows in enumerate(groups):
                counts[g][i] = np.bincount(rng.integers(0, len(rows), len(rows)),
                                           minlength=len(rows))
        per_cutoff[start:start + size] = np.column_stack(
            [weighted_roc_auc(y[rows], p[rows], counts[g]) for g, rows in enumerate(groups)])
    usable = np.isfinite(per_cutoff).any(axis=1)
    means = np.full(resamples, np.nan)
    means[usable] = np.nanmean(per_cutoff[usable], axis=1)
    finite = means[np.isfinite(means)]
    if len(finite):
        result["ci95"] = [float(np.quantile(finite, 0.025)), float(np.quantile(finite, 0.975))]
    return result
