"""Classification metrics of a propensity model on held-out rows, overall and per slice.

Every candidate and the champion are scored by the same function on the same rows, so
the leaderboard and gate 2 compare like with like. Metric names are the ones the report,
the ledger and ``shopflow status`` use: ``roc_auc``, ``pr_auc``, ``log_loss``, ``brier``,
``precision``, ``recall``, ``f1``, ``lift_top_decile``, ``ece``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

LOWER_IS_BETTER = frozenset({"log_loss", "brier", "ece"})
RETURNING_COLUMN = "is_returning_buyer"
CALIBRATION_BINS = 10
_EPS = 1e-7


def higher_is_better(metric: str) -> bool:
    """Direction of a metric (gate 2 and model selection need it)."""
    return metric.split(":")[0] not in LOWER_IS_BETTER


def reliability(y: np.ndarray, p: np.ndarray, *, bins: int = CALIBRATION_BINS) -> list[dict[str, Any]]:
    """Reliability diagram bins (equal width on [0, 1]): mean prediction vs observed rate."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        mask = index == b
        count = int(mask.sum())
        out.append({
            "lower": float(edges[b]),
            "upper": float(edges[b + 1]),
            "count": count,
            "mean_predicted": float(p[mask].mean()) if count else None,
            "observed_rate": float(y[mask].mean()) if count else None,
        })
    return out


def expected_calibration_error(bins: list[dict[str, Any]]) -> float:
    """Count-weighted mean |observed - predicted| over the reliability bins."""
    total = sum(b["count"] for b in bins)
    if not total:
        return float("nan")
    return float(sum(
        b["count"] * abs(b["observed_rate"] - b["mean_predicted"]) for b in bins if b["count"]
    ) / total)


def lift_top_decile(y: np.ndarray, p: np.ndarray) -> float:
    """Buy rate among the top 10% scores / overall buy rate (what a campaign gains)."""
    base = float(y.mean()) if len(y) else 0.0
    if base == 0.0:
        return float("nan")
    top = max(1, int(np.ceil(0.1 * len(p))))
    order = np.argsort(-p, kind="mergesort")[:top]
    return float(y[order].mean() / base)


def _ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, 0 when nothing was counted (sklearn's zero_division=0)."""
    return numerator / denominator if denominator else 0.0


def classification_metrics(
    y: np.ndarray, p: np.ndarray, *, threshold: float = 0.5
) -> dict[str, float]:
    """The scalar metrics (NaN where undefined, e.g. AUC on a one-class slice).

    Counts-based metrics, log loss and Brier are plain numpy (the same formulas as
    sklearn's, without its per-call input validation, which cost more than the metrics
    in every search trial); the ranking metrics come from sklearn.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.asarray(y, dtype=np.int64)
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    if not len(y):  # nothing to score: every metric undefined, never an exception
        return {"rows": 0.0, **{name: float("nan") for name in (
            "positive_rate", "roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall",
            "f1", "lift_top_decile", "ece")}}
    both = len(np.unique(y)) == 2
    predicted = p >= threshold
    actual = y == 1
    tp = float(np.count_nonzero(predicted & actual))
    fp = float(np.count_nonzero(predicted & ~actual))
    fn = float(np.count_nonzero(~predicted & actual))
    return {
        "rows": float(len(y)),
        "positive_rate": float(y.mean()) if len(y) else float("nan"),
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "log_loss": float(-np.mean(np.where(actual, np.log(p), np.log1p(-p)))),
        "brier": float(np.mean((actual - p) ** 2)),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "lift_top_decile": lift_top_decile(y, p),
        "ece": expected_calibration_error(reliability(y, p)),
    }


def slice_columns(frame: pd.DataFrame) -> list[str]:
    """Columns to slice by: new vs returning buyers, plus any categorical column."""
    import pandas as pd

    columns = [RETURNING_COLUMN] if RETURNING_COLUMN in frame.columns else []
    for name in frame.columns:
        if name in ("user_id", "item_id") or name in columns:
            continue
        dtype = frame[name].dtype
        categorical = (isinstance(dtype, pd.CategoricalDtype)
                       or pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype))
        if categorical and 1 < frame[name].nunique(dropna=True) <= 20:
            columns.append(name)
    return columns


def slice_values(frame: pd.DataFrame, column: str) -> pd.Series:
    """Readable slice labels: ``returning``/``new`` for the returning-buyer flag."""
    import pandas as pd

    if column == RETURNING_COLUMN:
        flag = pd.to_numeric(frame[column], errors="coerce").fillna(0) > 0
        return flag.map({True: "returning", False: "new"})
    return frame[column].astype("string").fillna("(missing)")


def sliced_metrics(
    frame: pd.DataFrame, y: np.ndarray, p: np.ndarray, *, threshold: float = 0.5
) -> dict[str, dict[str, dict[str, float]]]:
    """``{column: {value: metrics}}`` on the same rows as the overall metrics."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for column in slice_columns(frame):
        labels = slice_values(frame, column).to_numpy()
        out[column] = {
            str(value): classification_metrics(y[labels == value], p[labels == value],
                                               threshold=threshold)
            for value in sorted(set(labels.tolist()))
        }
    return out


def flat_slice_metric(slices: dict[str, dict[str, dict[str, float]]], metric: str) -> dict[str, float]:
    """``{"slice_<metric>:<column>=<value>": value}`` — the form the ledger and gate use."""
    return {
        f"slice_{metric}:{column}={value}": m[metric]
        for column, values in slices.items()
        for value, m in values.items()
    }
