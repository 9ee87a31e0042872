"""Explanations from the trees' own SHAP contributions (no extra library).

XGBoost (``pred_contribs=True``) and LightGBM (``pred_contrib=True``) compute exact
TreeSHAP values in log-odds: per row, one value per feature plus a bias that sum to the
model's margin. Their mean absolute value is the global importance; the largest values of
one row are the reasons for that row's score. Families without built-in contributions
(baseline, bgnbd, torch) get a seeded permutation importance instead: the drop in ROC AUC
on the same rows when one column is shuffled (one pass per column, so it costs one
prediction per feature). Per-row reasons stay SHAP-only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from shopflow.training.model import PropensityModel


def global_importance(
    model: PropensityModel, frame: pd.DataFrame, *, limit: int | None = 20
) -> list[dict[str, Any]]:
    """Features by mean |SHAP| on ``frame``, largest first.

    For a family without SHAP contributions, the permutation importance on ``frame``
    (which then needs its ``label``; [] without both classes). Every entry has
    ``feature``, ``importance`` and ``method``; SHAP entries also ``mean_abs_shap``.
    """
    if not len(frame):
        return []
    contributions = model.contributions(frame)
    if contributions is None:
        return permutation_importance(model, frame, limit=limit)
    values = np.abs(contributions[:, : len(model.feature_names)]).mean(axis=0)
    order = np.argsort(-values, kind="mergesort")
    ranked = [
        {"feature": model.feature_names[i], "mean_abs_shap": float(values[i]),
         "importance": float(values[i]), "method": "mean_abs_shap"} for i in order
    ]
    return ranked[:limit] if limit else ranked


PERMUTATION_SEED = 0


def permutation_importance(
    model: PropensityModel, frame: pd.DataFrame, *, limit: int | None = 20
) -> list[dict[str, Any]]:
    """Features by the ROC AUC lost when each is shuffled on ``frame``, largest first."""
    from sklearn.metrics import roc_auc_score

    if "label" not in frame.columns:
        return []
    y = frame["label"].astype(int).to_numpy()
    if len(np.unique(y)) < 2:
        return []
    matrix = model.matrix(frame)
    base = float(roc_auc_score(y, model.predictor.predict(matrix)))
    rng = np.random.default_rng(PERMUTATION_SEED)
    drops = np.zeros(len(model.feature_names))
    for j in range(len(model.feature_names)):
        shuffled = matrix.copy()
        shuffled[:, j] = rng.permutation(matrix[:, j])
        drops[j] = base - float(roc_auc_score(y, model.predictor.predict(shuffled)))
    order = np.argsort(-drops, kind="mergesort")
    ranked = [
        {"feature": model.feature_names[i], "importance": float(drops[i]),
         "method": "permutation_roc_auc_drop"} for i in order
    ]
    return ranked[:limit] if limit else ranked


def top_reasons(
    model: PropensityModel, frame: pd.DataFrame, *, k: int = 3
) -> list[list[dict[str, Any]]] | None:
    """For each row, the ``k`` features that moved its score most (signed, log-odds)."""
    contributions = model.contributions(frame)
    if contributions is None:
        return None
    matrix = model.matrix(frame)
    features = contributions[:, : len(model.feature_names)]
    out = []
    for row in range(len(frame)):
        order = np.argsort(-np.abs(features[row]), kind="mergesort")[:k]
        out.append([
            {
                "feature": model.feature_names[j],
                "contribution": float(features[row, j]),
                "value": None if np.isnan(matrix[row, j]) else float(matrix[row, j]),
            }
            for j in order
        ])
    return out
