"""The population stability index (PSI): the one drift number of Shopflow.

Gate 1 (``shopflow.quality.metrics``: this batch against the last good batch's stored
histogram) and monitoring (``shopflow.monitoring.drift``: serving features and scores
against the training reference) both call :func:`psi`, so "PSI 0.25" means the same in
a quality report and in a drift alert. The policy:

- **Bins** come from the reference: interior edges at its quantiles ``1/bins, ...,
  (bins-1)/bins`` of the finite values, duplicates merged, so each bin holds about the
  same share and a shift anywhere in the range shows. Bins are closed on the right,
  ``(-inf, e0], (e0, e1], ..., (e_last, inf)``: an edge is itself a reference value, so a
  value equal to it stays with the values below. A constant reference thus has two
  bins, up to its value and above it, so a rise off a constant shows (a count that was
  always 0 starts to move) while a fall below it does not.
- **Missing values** (NaN, None, +-inf: anything not finite) form one more bin, and every
  share is of all values. A jump in the missing share is drift like any other shift:
  a feature that goes null in half the rows has PSI ~ 2 even if the rest look the same.
- **Empty bins** get a share of :data:`EPSILON` on either side, so a bin that empties or
  fills from nothing gives a large but finite PSI.
- PSI is ``sum((cur - ref) * ln(cur / ref))`` over the bins: < 0.1 stable, 0.1-0.25 a
  moderate shift, > 0.25 a large one (the usual reading, and the defaults of
  ``settings.quality`` and ``settings.monitoring``).

A :class:`Histogram` (edges and shares) is all a reference needs, so gate 1 keeps a few
hundred bytes per distribution instead of the last batch's values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterable

EPSILON = 1e-4
"""Share given to an empty bin (either side) so that ln() stays finite."""


@dataclass(frozen=True)
class Histogram:
    """A reference distribution: interior bin edges, the share per value bin, the missing share.

    ``shares`` has ``len(edges) + 1`` entries; ``sum(shares) + missing == 1`` (shares are
    of all values, missing ones included).
    """

    edges: list[float]
    shares: list[float]
    missing: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"edges": self.edges, "shares": self.shares, "missing": self.missing}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Histogram:
        return cls(
            edges=[float(e) for e in data["edges"]],
            shares=[float(s) for s in data["shares"]],
            missing=float(data.get("missing", 0.0)),
        )

    @staticmethod
    def has_missing_share(data: dict[str, Any]) -> bool:
        """Whether a stored histogram follows this policy (older ones lack ``missing``).

        A histogram stored before the shared PSI counted only finite values and put a
        value equal to an edge in the bin above; compared with this policy it would
        report drift that is not there, so readers skip it (see
        ``shopflow.quality.metrics.Baseline.from_dict``).
        """
        return "missing" in data


def _values(values: Iterable[float] | np.ndarray) -> np.ndarray:
    """float64 1-d array; None becomes NaN (numpy's float conversion does that)."""
    if not hasattr(values, "__array__") and not isinstance(values, (list, tuple)):
        values = list(values)
    return np.asarray(values, dtype=np.float64).reshape(-1)


def _check_bins(bins: int) -> None:
    if bins < 2:
        raise ValueError(f"psi needs at least 2 bins, got {bins}")


def _shares(values: np.ndarray, edges: list[float]) -> tuple[list[float], float]:
    """Shares of all values per bin ``(e[i-1], e[i]]``, and the share of missing values."""
    finite = np.isfinite(values)
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), values[finite], side="left")
    counts = np.bincount(index, minlength=len(edges) + 1)
    total = max(values.size, 1)
    return (counts / total).tolist(), float((values.size - int(finite.sum())) / total)


def histogram(values: Iterable[float] | np.ndarray, *, bins: int) -> Histogram | None:
    """The reference histogram of ``values`` (None when there are no values at all).

    All-missing values give a histogram with no edges and ``missing == 1``.

    Raises:
        ValueError: ``bins`` < 2.
    """
    _check_bins(bins)
    data = _values(values)
    if data.size == 0:
        return None
    finite = data[np.isfinite(data)]
    edges: list[float] = []
    if finite.size:
        quantiles = np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])
        edges = [float(q) for q in np.unique(quantiles)]
    shares, missing = _shares(data, edges)
    return Histogram(edges=edges, shares=shares, missing=missing)


def psi(reference: Histogram, values: Iterable[float] | np.ndarray) -> float | None:
    """PSI of ``values`` against a reference histogram (None when there are no values).

    See the module docstring for the policy (reference quantile bins, missing values in
    a bin of their own, :data:`EPSILON` for empty bins).
    """
    data = _values(values)
    if data.size == 0:
        return None
    shares, missing = _shares(data, reference.edges)
    total = 0.0
    pairs = zip([*reference.shares, reference.missing], [*shares, missing], strict=True)
    for old, new in pairs:
        old, new = max(old, EPSILON), max(new, EPSILON)
        total += (new - old) * math.log(new / old)
    return float(total)


def sample_psi(
    reference: Iterable[float] | np.ndarray,
    current: Iterable[float] | np.ndarray,
    *,
    bins: int = 10,
) -> float:
    """PSI of ``current`` against a reference sample: :func:`psi` on its :func:`histogram`.

    For callers that hold the reference values (monitoring keeps the training rows).

    Returns:
        PSI >= 0; 0 when either sample is empty (nothing to compare).

    Raises:
        ValueError: ``bins`` < 2.
    """
    _check_bins(bins)
    base = histogram(reference, bins=bins)
    value = psi(base, current) if base is not None else None
    return 0.0 if value is None else value
