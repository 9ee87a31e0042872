"""Train-time feature pruning: constant, duplicate and near-duplicate columns go.

Judged on the training rows only, in frame order, greedily: a column is dropped when it
is constant (or entirely missing), identical to a column already kept (same values, same
missing rows), or correlated beyond :data:`MAX_ABS_CORR` in absolute value with one (on
a fixed, seeded sample of at most :data:`CORR_SAMPLE_ROWS` rows, missing values at the
column mean). The first of a correlated group stays, so the choice is deterministic.
Columns a family reads by name (``protected``) are never dropped. Each drop's reason
goes to the model's metadata and the report; the model's ``feature_names`` are the kept
columns, so serving feeds it exactly those.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterable

MAX_ABS_CORR = 0.99
CORR_SAMPLE_ROWS = 100_000
SAMPLE_SEED = 0


@dataclass(frozen=True)
class Pruning:
    """The kept columns (frame order) and, per dropped column, why."""

    kept: list[str]
    dropped: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {"kept": len(self.kept), "dropped": list(self.dropped),
                "rule": f"constant, identical or |corr| > {MAX_ABS_CORR} with an earlier kept "
                        "column, on the training rows"}


def prune_features(matrix: np.ndarray, names: list[str], *,
                   protected: Iterable[str] = ()) -> Pruning:
    """Which of ``names`` (columns of ``matrix``, the training rows) to keep, and why not."""
    keep_always = set(protected)
    n_rows = matrix.shape[0]
    if n_rows > CORR_SAMPLE_ROWS:
        rows = np.sort(np.random.default_rng(SAMPLE_SEED).choice(n_rows, CORR_SAMPLE_ROWS,
                                                                 replace=False))
        sample = matrix[rows]
    else:
        sample = matrix
    with np.errstate(all="ignore"):
        means = np.nanmean(sample, axis=0) if len(sample) else np.zeros(len(names))
    filled = np.where(np.isnan(sample), np.nan_to_num(means), sample)
    centred = filled - filled.mean(axis=0) if len(filled) else filled
    norms = np.sqrt((centred ** 2).sum(axis=0))
    kept: list[int] = []
    dropped: list[dict[str, Any]] = []
    for j, name in enumerate(names):
        column = matrix[:, j]
        finite = column[~np.isnan(column)]
        reason: dict[str, Any] | None = None
        if not len(finite) or finite.min() == finite.max():
            reason = {"reason": "constant",
                      "value": None if not len(finite) else float(finite[0])}
        else:
            for k in kept:
                other = matrix[:, k]
                if np.array_equal(column, other, equal_nan=True):
                    reason = {"reason": "identical", "to": names[k]}
                    break
                if norms[j] > 0 and norms[k] > 0:
                    corr = float(centred[:, j] @ centred[:, k] / (norms[j] * norms[k]))
                    if abs(corr) > MAX_ABS_CORR:
                        reason = {"reason": "near-duplicate", "to": names[k],
                                  "corr": round(corr, 5)}
                        break
        if reason is not None and name not in keep_always:
            dropped.append({"feature": name, **reason})
        else:
            kept.append(j)
    return Pruning(kept=[names[j] for j in kept], dropped=dropped)
