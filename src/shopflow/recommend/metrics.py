"""Ranking metrics of top-K recommendation lists, overall and per slice, and the leaderboard.

Every model and the popularity baseline are scored by the same function on the same
buyers of the same held-out cutoffs, so the leaderboard compares like with like. Metric
names (``recall@10``, ``ndcg@10``, ``map@10``, ``hit_rate@10``, ``coverage@10``) are
the ones the ledger, the gate and the report use. A user counts when they bought at
least one item in the label window; users with no purchase have nothing to recall.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

PRIMARY_METRIC = "ndcg@10"
DEFAULT_KS = (5, 10, 20)
SLICES = ("new", "returning")


def user_metrics(ranked: list[str] | np.ndarray, relevant: set[str], k: int) -> dict[str, float]:
    """Recall, NDCG, average precision and hit of one top-``k`` list (binary relevance).

    Recall divides by all relevant items; NDCG and AP normalise by the best possible
    list of length ``k`` (``min(|relevant|, k)`` hits), so a perfect list scores 1.
    """
    top = list(ranked[:k])
    hits = np.array([item in relevant for item in top], dtype=float)
    n_rel = len(relevant)
    if n_rel == 0:
        raise ValueError("user_metrics needs at least one relevant item")
    ideal = min(n_rel, k)
    discounts = 1.0 / np.log2(np.arange(2, len(top) + 2))
    dcg = float((hits * discounts).sum())
    idcg = float(discounts[:ideal].sum()) if len(top) >= ideal else float(
        (1.0 / np.log2(np.arange(2, ideal + 2))).sum())
    precision_at = np.cumsum(hits) / np.arange(1, len(top) + 1) if len(top) else np.zeros(0)
    return {
        "recall": float(hits.sum() / n_rel),
        "ndcg": dcg / idcg if idcg else 0.0,
        "ap": float((precision_at * hits).sum() / ideal),
        "hit": float(hits.sum() > 0),
    }


def evaluate_lists(
    lists: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    slices: pd.DataFrame | None = None,
    catalogue: int,
    ks: tuple[int, ...] = DEFAULT_KS,
) -> dict[str, float]:
    """Metrics of recommendation lists against what was bought.

    Args:
        lists: ``user_id, cutoff_time, item_id, rank`` (rank 1 = first), at least
            ``max(ks)`` rows per user where possible.
        labels: the bought items, ``user_id, cutoff_time, item_id``; every (user, cutoff)
            here is evaluated, an empty list scores 0.
        slices: ``user_id, cutoff_time, slice`` (``new`` or ``returning``); adds
            ``<metric>:<slice>`` keys.
        catalogue: number of items that could be recommended (coverage's denominator).
        ks: list lengths.

    Returns:
        ``recall@k, ndcg@k, map@k, hit_rate@k, coverage@k`` for each k, ``users``,
        and the per-slice variants.
    """
    keys = ["user_id", "cutoff_time"]
    ordered = lists.sort_values([*keys, "rank"], kind="mergesort")
    ranked = ordered.groupby(keys, sort=False)["item_id"].agg(list).to_dict()
    relevant = labels.groupby(keys, sort=False)["item_id"].agg(set).to_dict()
    slice_of: dict[Any, Any] = {} if slices is None else dict(
        zip(zip(slices["user_id"], slices["cutoff_time"], strict=True), slices["slice"], strict=True))
    rows: dict[str, list[float]] = {}
    groups: dict[str, list[str]] = {}
    for key, rel in relevant.items():
        top = ranked.get(key, [])
        group = slice_of.get(key)
        for k in ks:
            for name, value in user_metrics(top, rel, k).items():
                metric = f"{'map' if name == 'ap' else 'hit_rate' if name == 'hit' else name}@{k}"
                rows.setdefault(metric, []).append(value)
                if group is not None:
                    rows.setdefault(f"{metric}:{group}", []).append(value)
        groups.setdefault(group or "", []).append(str(key))
    out: dict[str, float] = {m: float(np.mean(v)) for m, v in rows.items()}
    out["users"] = float(len(relevant))
    for group in SLICES:
        out[f"users:{group}"] = float(len(groups.get(group, [])))
    for k in ks:
        shown = ordered.loc[ordered["rank"] <= k, "item_id"].nunique()
        out[f"coverage@{k}"] = float(shown / catalogue) if catalogue else 0.0
    return out


def leaderboard(results: dict[str, dict[str, float]], *,
                primary: str = PRIMARY_METRIC) -> pd.DataFrame:
    """One row per model, best ``primary`` first; columns are the headline metrics."""
    import pandas as pd

    columns = ["recall@10", "ndcg@10", "map@10", "hit_rate@10", "coverage@10",
               "ndcg@10:new", "ndcg@10:returning", "recall@10:new", "recall@10:returning",
               "recall@20", "ndcg@20", "users"]
    frame = pd.DataFrame(
        [{"model": name, **{c: metrics.get(c, float("nan")) for c in columns}}
         for name, metrics in results.items()]
    )
    if frame.empty:
        return pd.DataFrame(columns=["model", *columns])
    return frame.sort_values(primary, ascending=False, kind="mergesort").reset_index(drop=True)


def leaderboard_html(board: pd.DataFrame, *, title: str = "Recommendations",
                     notes: dict[str, Any] | None = None) -> str:
    """A self-contained ``<section>`` for the run report: the leaderboard and a few facts."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in board.columns)
    body = []
    for _, row in board.iterrows():
        cells = []
        for column in board.columns:
            value = row[column]
            if isinstance(value, float | np.floating):
                text = "" if np.isnan(value) else (f"{value:.0f}" if column == "users" else f"{value:.4f}")
            else:
                text = str(value)
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    facts = "".join(
        f"<li><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</li>" for k, v in (notes or {}).items()
    )
    return (
        f'<section class="shopflow-recommendations"><h2>{html.escape(title)}</h2>'
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        + (f"<ul>{facts}</ul>" if facts else "")
        + "</section>"
    )
