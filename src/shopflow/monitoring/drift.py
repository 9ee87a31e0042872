"""Population stability index (PSI): how far a distribution moved from its reference.

PSI = sum over bins of (cur - ref) * ln(cur / ref), with bins cut at the reference's
quantiles, so each reference bin holds about the same share and a shift anywhere in the
range shows. Missing values get a bin of their own (a feature going null is drift too).
Rules of thumb: < 0.1 stable, 0.1-0.25 moderate, > 0.25 shifted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

EPSILON = 1e-4  # share given to empty bins so ln() stays finite


def psi(reference: Iterable[float] | np.ndarray, current: Iterable[float] | np.ndarray, *,
        bins: int = 10) -> float:
    """PSI of ``current`` against ``reference``.

    Args:
        reference: values the model was trained on (NaN = missing).
        current: values seen now.
        bins: number of quantile bins of the reference.

    Returns:
        PSI >= 0 (0 when both are empty or identical in distribution).

    Raises:
        ValueError: ``bins`` < 2.
    """
    if bins < 2:
        raise ValueError(f"psi needs at least 2 bins, got {bins}")
    ref = np.asarray(list(reference) if not isinstance(reference, np.ndarray) else reference,
                     dtype=np.float64)
    cur = np.asarray(list(current) if not isinstance(current, np.ndarray) else current,
                     dtype=np.float64)
    if ref.size == 0 or cur.size == 0:
        return 0.0
    ref_shares = _shares(ref, _edges(ref, bins))
    cur_shares = _shares(cur, _edges(ref, bins))
    ref_shares = np.clip(ref_shares, EPSILON, None)
    cur_shares = np.clip(cur_shares, EPSILON, None)
    return float(np.sum((cur_shares - ref_shares) * np.log(cur_shares / ref_shares)))


def _edges(ref: np.ndarray, bins: int) -> np.ndarray:
    finite = ref[np.isfinite(ref)]
    if finite.size == 0:
        return np.array([], dtype=np.float64)
    quantiles = np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(quantiles)


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shares per bin: ``len(edges) + 1`` bins ``(e[i-1], e[i]]``, then one for missing."""
    missing = ~np.isfinite(values)
    counts = np.bincount(np.searchsorted(edges, values[~missing], side="left"),
                         minlength=len(edges) + 1).astype(np.float64)
    counts = np.append(counts, missing.sum())
    return counts / max(values.size, 1)


@dataclass
class DriftReport:
    """PSI per column against a threshold.

    Attributes:
        psi: column -> PSI.
        threshold: PSI above which a column counts as drifted.
        reference_rows: rows in the reference.
        current_rows: rows compared.
    """

    psi: dict[str, float]
    threshold: float
    reference_rows: int
    current_rows: int
    notes: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> list[str]:
        """Columns beyond the threshold, worst first."""
        return sorted((c for c, v in self.psi.items() if v > self.threshold),
                      key=lambda c: -self.psi[c])

    @property
    def max_psi(self) -> float:
        return max(self.psi.values(), default=0.0)

    def to_dict(self) -> dict[str, object]:
        return {
            "psi": {k: round(v, 6) for k, v in self.psi.items()},
            "threshold": self.threshold,
            "max_psi": round(self.max_psi, 6),
            "drifted": self.drifted,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "notes": list(self.notes),
        }


def frame_psi(reference: pd.DataFrame, current: pd.DataFrame, *, columns: Iterable[str],
              threshold: float, bins: int = 10) -> DriftReport:
    """PSI of every listed column present in both frames (numeric or boolean)."""
    import pandas as pd

    values: dict[str, float] = {}
    notes: list[str] = []
    for column in columns:
        if column not in reference.columns or column not in current.columns:
            notes.append(f"{column}: not in both frames, skipped")
            continue
        ref = pd.to_numeric(reference[column].astype("float64", errors="ignore"),
                            errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        cur = pd.to_numeric(current[column].astype("float64", errors="ignore"),
                            errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        values[column] = psi(ref, cur, bins=bins)
    return DriftReport(psi=values, threshold=threshold, reference_rows=len(reference),
                       current_rows=len(current), notes=notes)
