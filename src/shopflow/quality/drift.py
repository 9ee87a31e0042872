"""Distribution drift as a population stability index (PSI) against a stored histogram.

The baseline keeps, per key column, quantile bin edges of the last good batch and the
share of values in each bin; a new batch is binned on the same edges. PSI is
``sum((new - old) * ln(new / old))`` over the bins: < 0.1 is stable, 0.1-0.25 a moderate
shift, > 0.25 a large one (the usual reading, and the defaults of ``settings.quality``).
Storing a histogram instead of raw values keeps the baseline a few hundred bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

#: Floor for empty bins, so a bin that empties (or fills from nothing) gives a large but
#: finite PSI instead of infinity.
_EPSILON = 1e-4


@dataclass(frozen=True)
class Histogram:
    """Interior bin edges and the share of values per bin (``len(edges) + 1`` bins)."""

    edges: list[float]
    shares: list[float]

    def to_dict(self) -> dict[str, Any]:
        return {"edges": self.edges, "shares": self.shares}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Histogram:
        return cls(edges=[float(e) for e in data["edges"]], shares=[float(s) for s in data["shares"]])


def _finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype="float64")
    return array[np.isfinite(array)]


def _shares(values: np.ndarray, edges: list[float]) -> list[float]:
    # side="right": a value equal to an edge goes to the bin above it, as np.quantile's
    # edges are themselves values of the baseline.
    index = np.searchsorted(np.asarray(edges, dtype="float64"), values, side="right")
    counts = np.bincount(index, minlength=len(edges) + 1)
    return (counts / max(len(values), 1)).tolist()


def histogram(values: Sequence[float] | np.ndarray, *, bins: int) -> Histogram | None:
    """Quantile histogram of the finite values (None when there are none)."""
    data = _finite(values)
    if data.size == 0:
        return None
    quantiles = np.quantile(data, np.linspace(0, 1, bins + 1)[1:-1])
    edges = sorted({float(q) for q in quantiles})
    return Histogram(edges=edges, shares=_shares(data, edges))


def psi(baseline: Histogram, values: Sequence[float] | np.ndarray) -> float | None:
    """PSI of ``values`` against the baseline histogram (None when there are no values)."""
    data = _finite(values)
    if data.size == 0:
        return None
    current = _shares(data, baseline.edges)
    total = 0.0
    for old, new in zip(baseline.shares, current, strict=True):
        old, new = max(old, _EPSILON), max(new, _EPSILON)
        total += (new - old) * math.log(new / old)
    return float(total)
