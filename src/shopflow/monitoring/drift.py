"""Feature and score drift of production against its training reference.

The number is the shared PSI (:func:`shopflow.quality.drift.sample_psi`, re-exported here
as :func:`psi`), the same one gate 1 uses: quantile bins of the reference, missing values
in a bin of their own (a feature going null is drift too), a small floor for empty bins.
Rules of thumb: < 0.1 stable, 0.1-0.25 moderate, > 0.25 shifted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shopflow.features.matrix import numeric_values
from shopflow.quality.drift import sample_psi

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pandas as pd

psi = sample_psi
"""PSI of ``current`` against ``reference`` samples (``psi(reference, current, bins=10)``)."""

__all__ = ["DriftReport", "frame_psi", "psi"]


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
    """PSI of every listed column present in both frames (numeric or boolean).

    Columns are read as the models read them (:func:`shopflow.features.matrix.numeric_values`),
    so unreadable values count as missing, which the PSI counts as drift.
    """
    values: dict[str, float] = {}
    notes: list[str] = []
    for column in columns:
        if column not in reference.columns or column not in current.columns:
            notes.append(f"{column}: not in both frames, skipped")
            continue
        # the values the model reads (shopflow.features.matrix): NaN for missing
        ref = numeric_values(reference[column])
        cur = numeric_values(current[column])
        values[column] = sample_psi(ref, cur, bins=bins)
    return DriftReport(psi=values, threshold=threshold, reference_rows=len(reference),
                       current_rows=len(current), notes=notes)
