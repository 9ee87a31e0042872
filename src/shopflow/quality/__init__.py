"""Data-quality gates (gate 1, docs/DESIGN.md §6) with Great Expectations.

Entry points (imported lazily, so ``import shopflow.quality`` does not import GX):

- :func:`run_gate` -- ``run_gate(settings, "raw" | "staging" | "marts", *, batch_id=None)``
  runs a layer's checkpoint, writes Data Docs and a JSON report, updates the baseline on a
  pass, and on an ``error`` failure quarantines and raises :class:`GateFailed`;
- :func:`check_raw_table` / :func:`check_raw_frame` -- the raw suite without side effects
  on the data (``shopflow quality --layer raw``, checking a file before ingestion);
- :class:`GateResult`, :class:`CheckResult`, :class:`GateFailed`, :class:`QualityError`.

The suites themselves are code in ``expectations/`` at the repository root.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shopflow.lazy_exports import lazy_export
from shopflow.quality.result import (
    LAYERS,
    CheckResult,
    GateFailed,
    GateResult,
    QualityError,
    format_table,
)

if TYPE_CHECKING:
    from shopflow.quality.gate import check_raw_frame, check_raw_table, run_gate

__all__ = [
    "LAYERS",
    "CheckResult",
    "GateFailed",
    "GateResult",
    "QualityError",
    "check_raw_frame",
    "check_raw_table",
    "format_table",
    "run_gate",
]

_EXPORTS = {name: "shopflow.quality.gate" for name in ("run_gate", "check_raw_table", "check_raw_frame")}


def __getattr__(name: str) -> Any:
    return lazy_export(__name__, _EXPORTS, name)
