"""Training: out-of-time split, candidate families, time-boxed search, the pipeline step.

Entry points (imported lazily so ``import shopflow.training`` stays light):

* :func:`shopflow.training.pipeline.run_training` — train, evaluate, gate, record;
* :func:`shopflow.training.pipeline.train_family` / ``evaluate_candidates`` / ``decide`` —
  the same as separate steps for the DAG;
* :class:`shopflow.training.model.PropensityModel` — what every candidate is.
"""

from __future__ import annotations

from typing import Any

from shopflow.lazy_exports import lazy_export

_EXPORTS = {
    "PropensityModel": "shopflow.training.model",
    "CandidateResult": "shopflow.training.pipeline",
    "TrainingOutcome": "shopflow.training.pipeline",
    "run_training": "shopflow.training.pipeline",
    "train_family": "shopflow.training.pipeline",
    "evaluate_candidates": "shopflow.training.pipeline",
    "decide": "shopflow.training.pipeline",
    "split_by_cutoff": "shopflow.training.split",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    return lazy_export(__name__, _EXPORTS, name)
