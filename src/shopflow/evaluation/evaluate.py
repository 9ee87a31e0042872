"""Score one model on held-out rows: metrics, slices, calibration, curves, explanations.

The result is plain JSON-able data (:meth:`ModelEvaluation.to_dict`), so the DAG can pass
it between tasks and the report can be rendered from it without the models.

Metrics, slices and curves use every held-out row. Global SHAP importance uses a fixed,
seeded sample of at most ``explain_rows`` rows (``training.explain_rows``, default
:data:`~shopflow.settings.EXPLAIN_ROWS`): exact TreeSHAP costs rows x trees x leaves x
depth, and on all 3.5k test rows of a 600-round XGBoost model it took ~10 s of the
evaluate step, while the mean |SHAP| ranking of 1,000 rows is already stable. Up to the
cap every row is explained, as before. The same sample gives the permutation importance
of families without SHAP (baseline, bgnbd, torch), and the evaluation records how many
rows of how many were explained (``explained``, shown in the report). With ``explain``,
the ROC AUC also gets its per-test-cutoff values and a
bootstrap 95% interval (``uncertainty``). The explained examples name their shopper by
pseudonym only (``hash_id``, :class:`shopflow.privacy.IdHasher`): they end up in reports.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from shopflow.evaluation.explain import global_importance, top_reasons
from shopflow.evaluation.metrics import classification_metrics, reliability, sliced_metrics
from shopflow.evaluation.uncertainty import roc_auc_interval
from shopflow.settings import EXPLAIN_ROWS

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd

    from shopflow.training.model import PropensityModel

CURVE_POINTS = 101
EXAMPLE_ROWS = 5
SHAP_SAMPLE_SEED = 0


@dataclass
class ModelEvaluation:
    """How one model did on the held-out rows."""

    version: str
    family: str
    feature_service: str
    role: str  # "candidate" or "champion"
    metrics: dict[str, float]
    slices: dict[str, dict[str, dict[str, float]]]
    calibration: list[dict[str, Any]]
    curves: dict[str, dict[str, list[float]]]
    importance: list[dict[str, Any]] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)
    validation_metrics: dict[str, float] = field(default_factory=dict)
    #: per-test-cutoff ROC AUC, their mean and a bootstrap 95% interval (see
    #: :mod:`shopflow.evaluation.uncertainty`)
    uncertainty: dict[str, Any] = field(default_factory=dict)
    #: rows the importance was computed on: ``rows`` of ``of`` held-out rows, at most
    #: ``max_rows``; ``sampled`` (seed ``seed``) when fewer than all (see :func:`explained`)
    explained: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelEvaluation:
        return cls(**data)


def _curves(y: np.ndarray, p: np.ndarray) -> dict[str, dict[str, list[float]]]:
    """ROC and PR curves thinned to about ``CURVE_POINTS`` points (enough to plot)."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    if len(np.unique(y)) < 2:
        return {}
    fpr, tpr, _ = roc_curve(y, p)
    precision, recall, _ = precision_recall_curve(y, p)

    def thin(*arrays: np.ndarray) -> list[list[float]]:
        index = np.unique(np.linspace(0, len(arrays[0]) - 1, CURVE_POINTS).astype(int))
        return [np.round(a[index], 5).tolist() for a in arrays]

    fpr_t, tpr_t = thin(fpr, tpr)
    recall_t, precision_t = thin(recall, precision)
    return {"roc": {"fpr": fpr_t, "tpr": tpr_t},
            "pr": {"recall": recall_t, "precision": precision_t}}


def shap_sample(frame: pd.DataFrame, *, rows: int = EXPLAIN_ROWS) -> pd.DataFrame:
    """At most ``rows`` rows of ``frame``, the same ones for the same frame (seeded)."""
    if len(frame) <= rows:
        return frame
    index = np.sort(np.random.default_rng(SHAP_SAMPLE_SEED).choice(len(frame), rows,
                                                                    replace=False))
    return frame.iloc[index]


def explained(sample: pd.DataFrame, frame: pd.DataFrame, *, max_rows: int) -> dict[str, Any]:
    """What the global explanations of ``frame`` were computed on: ``sample``'s rows."""
    sampled = len(sample) < len(frame)
    return {"rows": len(sample), "of": len(frame), "max_rows": max_rows, "sampled": sampled,
            "seed": SHAP_SAMPLE_SEED if sampled else None}


def evaluate_model(
    model: PropensityModel,
    frame: pd.DataFrame,
    *,
    version: str,
    role: str = "candidate",
    threshold: float = 0.5,
    validation_metrics: dict[str, float] | None = None,
    explain: bool = True,
    explain_rows: int = EXPLAIN_ROWS,
    hash_id: Callable[[str], str] | None = None,
) -> ModelEvaluation:
    """Score ``model`` on ``frame`` (held-out rows with ``label``) and describe the result.

    ``explain_rows`` bounds the rows of the global importance (a seeded sample above it);
    ``hash_id`` pseudonymizes the user of each explained example; None: examples name none.
    """
    y = frame["label"].astype(int).to_numpy()
    p = model.predict_proba(frame)
    examples: list[dict[str, Any]] = []
    importance: list[dict[str, Any]] = []
    uncertainty: dict[str, Any] = {}
    explained_rows: dict[str, Any] = {}
    if explain:
        uncertainty = roc_auc_interval(frame, y, p)
        sample = shap_sample(frame, rows=explain_rows)
        importance = global_importance(model, sample)
        explained_rows = explained(sample, frame, max_rows=explain_rows)
        top = np.argsort(-p, kind="mergesort")[:EXAMPLE_ROWS]
        reasons = top_reasons(model, frame.iloc[top])
        if reasons is not None:
            examples = [
                {**({"user_id": hash_id(str(frame["user_id"].iloc[i]))} if hash_id else {}),
                 "probability": float(p[i]), "label": int(y[i]), "reasons": r}
                for i, r in zip(top, reasons, strict=True)
            ]
    return ModelEvaluation(
        version=version,
        family=model.family,
        feature_service=model.feature_service,
        role=role,
        metrics=classification_metrics(y, p, threshold=threshold),
        slices=sliced_metrics(frame, y, p, threshold=threshold),
        calibration=reliability(y, p),
        curves=_curves(y, p),
        importance=importance,
        examples=examples,
        validation_metrics=dict(validation_metrics or {}),
        uncertainty=uncertainty,
        explained=explained_rows,
    )
