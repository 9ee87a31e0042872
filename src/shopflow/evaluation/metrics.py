"""Classification metrics of a propensity model on held-out rows, overall and per slice.

Every candidate and the champion are scored by the same function on the same rows, so
the leaderboard and gate 2 compare like with like. Metric names are the ones the report,
the ledger and ``shopflow status`` use: ``roc_auc``, ``pr_auc``, ``log_loss``, ``brier``,
``precision``, ``recall``, ``f1``, ``lift_top_decile``, ``ece``.

Slices (docs/DESIGN.md §6): new vs returning buyers, tenure, activity and spend bands, and any
low-cardinality categorical column (a top category where the features carry one). Gate 2
compares two models' primary metric with a paired bootstrap interval on the same rows
(:func:`paired_bootstrap`), so a decision knows how noisy the difference is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

LOWER_IS_BETTER = frozenset({"log_loss", "brier", "ece"})
RETURNING_COLUMN = "is_returning_buyer"
#: Banded slices: slice name -> (feature column, [(upper bound exclusive, label), ...]);
#: the last label takes everything above. Fixed bands read the same for every model and
#: every run, so a champion's slice and a challenger's slice are the same users.
BANDS: dict[str, tuple[str, list[tuple[float, str]]]] = {
    "tenure_band": ("tenure_days", [(30.0, "<30d"), (90.0, "30-89d"), (float("inf"), "90d+")]),
    "activity_band": ("active_days_lookback",
                      [(2.0, "0-1 active days"), (7.0, "2-6 active days"),
                       (float("inf"), "7+ active days")]),
}
#: Spend is banded by tertiles of the positive spend on the rows scored (currencies differ).
SPEND_COLUMN = "monetary_lookback"
SPEND_BAND = "spend_band"
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
    """Slices: new vs returning buyers, tenure/activity/spend bands, categorical columns."""
    import pandas as pd

    columns = [RETURNING_COLUMN] if RETURNING_COLUMN in frame.columns else []
    columns += [band for band, (source, _) in BANDS.items() if source in frame.columns]
    if SPEND_COLUMN in frame.columns:
        columns.append(SPEND_BAND)
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
    if column in BANDS:
        source, bands = BANDS[column]
        values = pd.to_numeric(frame[source], errors="coerce").to_numpy(dtype=float)
        labels = np.full(len(values), "(missing)", dtype=object)
        lower = -np.inf
        for upper, label in bands:
            labels[(values >= lower) & (values < upper)] = label
            lower = upper
        return pd.Series(labels, index=frame.index, dtype="string")
    if column == SPEND_BAND:
        spend = pd.to_numeric(frame[SPEND_COLUMN], errors="coerce").to_numpy(dtype=float)
        labels = np.full(len(spend), "(missing)", dtype=object)
        labels[spend <= 0] = "no spend"
        positive = spend[spend > 0]
        if positive.size:
            low, high = np.quantile(positive, [1 / 3, 2 / 3])
            labels[(spend > 0) & (spend <= low)] = "low spend"
            labels[(spend > low) & (spend <= high)] = "mid spend"
            labels[spend > high] = "high spend"
        return pd.Series(labels, index=frame.index, dtype="string")
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


# ---- paired bootstrap ------------------------------------------------------------------
#: Resamples scored at once (memory: chunk x rows floats).
_BOOTSTRAP_CHUNK = 64


@dataclass(frozen=True)
class Interval:
    """A paired bootstrap interval of ``gain`` = challenger minus reference on one metric.

    ``gain`` is signed so that positive is better whatever the metric's direction (for a
    loss it is reference minus challenger). ``rows`` are the rows resampled (capped).
    """

    metric: str
    gain: float
    lower: float
    upper: float
    confidence: float
    resamples: int
    seed: int
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def weighted_roc_auc(y: np.ndarray, p: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC of every row of ``weights`` (resample counts), via ranks, ties counted half.

    Every bootstrap of a ROC AUC goes through it (gate 2's paired interval, the per-cutoff
    interval of :mod:`shopflow.evaluation.uncertainty`); unit weights give the plain AUC.
    """
    order = np.argsort(p, kind="mergesort")
    p_sorted, y_sorted, w = p[order], y[order].astype(bool), weights[:, order]
    starts = np.flatnonzero(np.r_[True, p_sorted[1:] != p_sorted[:-1]])
    group = np.cumsum(np.r_[True, p_sorted[1:] != p_sorted[:-1]]) - 1
    negative = np.where(y_sorted, 0.0, w)
    group_negative = np.add.reduceat(negative, starts, axis=1)
    below = np.cumsum(group_negative, axis=1) - group_negative
    lower_negatives = below[:, group] + 0.5 * group_negative[:, group]
    positive = np.where(y_sorted, w, 0.0)
    n_pos, n_neg = positive.sum(axis=1), negative.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (positive * lower_negatives).sum(axis=1) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def _weighted_metric(metric: str, y: np.ndarray, p: np.ndarray, weights: np.ndarray) -> np.ndarray:
    if metric == "roc_auc":
        return weighted_roc_auc(y, p, weights)
    q = np.clip(p, _EPS, 1 - _EPS)
    if metric == "log_loss":
        loss = -np.where(y == 1, np.log(q), np.log1p(-q))
    elif metric == "brier":
        loss = (y - q) ** 2
    else:  # any other metric: one resample at a time (slower, still bounded)
        out = np.empty(len(weights))
        for b, w in enumerate(weights):
            index = np.repeat(np.arange(len(y)), w.astype(np.int64))
            out[b] = classification_metrics(y[index], p[index]).get(metric, float("nan"))
        return out
    return np.asarray((weights @ loss) / weights.sum(axis=1), dtype=np.float64)


def paired_bootstrap(
    y: np.ndarray,
    challenger: np.ndarray,
    reference: np.ndarray,
    *,
    metric: str = "roc_auc",
    resamples: int = 500,
    seed: int = 0,
    confidence: float = 0.95,
    max_rows: int = 50_000,
) -> Interval:
    """Percentile interval of the gain on ``metric`` from resampling the same rows for both.

    Both models are scored on each resample of the rows (paired), so what the interval
    measures is the noise of the *difference*, much narrower than that of either metric.
    Seeded; rows beyond ``max_rows`` are subsampled (seeded) to bound the time.
    """
    y = np.asarray(y, dtype=np.int64)
    a = np.asarray(challenger, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    rng = np.random.default_rng(seed)
    if len(y) > max_rows:
        keep = np.sort(rng.choice(len(y), max_rows, replace=False))
        y, a, b = y[keep], a[keep], b[keep]
    n = len(y)
    sign = 1.0 if higher_is_better(metric) else -1.0
    full = np.ones((1, n))
    gain = float(sign * (_weighted_metric(metric, y, a, full)[0]
                         - _weighted_metric(metric, y, b, full)[0])) if n else float("nan")
    gains: list[np.ndarray] = []
    for start in range(0, resamples if n else 0, _BOOTSTRAP_CHUNK):
        size = min(_BOOTSTRAP_CHUNK, resamples - start)
        draws = rng.integers(0, n, size=(size, n)) + (np.arange(size) * n)[:, None]
        weights = np.bincount(draws.ravel(), minlength=size * n).reshape(size, n).astype(float)
        gains.append(sign * (_weighted_metric(metric, y, a, weights)
                             - _weighted_metric(metric, y, b, weights)))
    values = np.concatenate(gains) if gains else np.array([])
    values = values[np.isfinite(values)]
    tail = 100 * (1 - confidence) / 2
    lower, upper = ((float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail)))
                    if values.size else (float("nan"), float("nan")))
    return Interval(metric=metric, gain=gain, lower=lower, upper=upper, confidence=confidence,
                    resamples=int(values.size), seed=seed, rows=n)
