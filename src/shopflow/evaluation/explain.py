"""Explanations from the trees' own SHAP contributions (no extra library).

XGBoost (``pred_contribs=True``) and LightGBM (``pred_contrib=True``) compute exact
TreeSHAP values in log-odds: per row, one value per feature plus a bias that sum to the
model's margin. Their mean absolute value is the global importance; the largest values of
one row are the reasons for that row's score. Families without built-in contributions
(baseline, torch) get none rather than a slow approximation.
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
    """Features by mean |SHAP| on ``frame``, largest first ([] when unsupported)."""
    contributions = model.contributions(frame)
    if contributions is None or not len(frame):
        return []
    values = np.abs(contributions[:, : len(model.feature_names)]).mean(axis=0)
    order = np.argsort(-values, kind="mergesort")
    ranked = [
        {"feature": model.feature_names[i], "mean_abs_shap": float(values[i])} for i in order
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
