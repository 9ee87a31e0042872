"""Candidate generation: the few hundred items per shopper worth ranking, point in time.

A ranker can only order what it is given, so candidates decide the ceiling of every
model (their recall is measured and reported). Each source catches a different reason
to buy, and every one of them reads only events in ``(cutoff - lookback, cutoff]``:

* ``recent`` -- items the user viewed, carted or bought, most recent first (re-buys and
  abandoned carts);
* ``copurchase`` -- item-to-item neighbours of the user's recent items, counted from
  baskets (orders; user-days when an event has no order) in the window; each item keeps
  only its ``neighbours`` closest items, so a user's scores touch at most
  ``recent x neighbours`` items and the cost grows with events, not users x catalogue;
* ``category`` -- the most popular items of the user's favourite categories;
* ``popular`` -- the most bought items of the window (also the cold-start list);
* ``trending`` -- items bought more in the last days than their window average implies.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pandas as pd

logger = logging.getLogger(__name__)

SOURCES = ("recent", "copurchase", "category", "popular", "trending")
#: Weights of a user's own events when they seed co-purchase neighbours.
_SEED_WEIGHTS = {"view": 1.0, "cart": 2.0, "purchase": 3.0, "return": 0.0}
#: Views count this much of a purchase in popularity (clickstreams have far more views).
_VIEW_POPULARITY = 0.02


@dataclass(frozen=True)
class CandidateConfig:
    """How many items each source contributes per user.

    ``neighbours`` is how many co-purchase neighbours each item keeps (its item-kNN row);
    ``copurchase`` how many of their scored neighbours a user gets. The co-purchase seeds
    are the user's ``recent`` items.
    """

    recent: int = 100
    copurchase: int = 100
    neighbours: int = 100
    category: int = 20
    favourite_categories: int = 3
    popular: int = 50
    trending: int = 20
    trend_window: timedelta = timedelta(days=7)
    max_basket_items: int = 50
    batch_users: int = 1000

    def describe(self) -> dict[str, Any]:
        out = asdict(self)
        out["trend_window"] = str(self.trend_window)
        return out


@dataclass
class WindowStats:
    """Item statistics of one cutoff's window, shared by candidates and cold start."""

    cutoff: pd.Timestamp
    item_ids: np.ndarray  # item code -> item id
    popularity: np.ndarray  # per item code
    trend: np.ndarray  # per item code
    category: np.ndarray  # per item code, category id or None

    def popular_items(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` most popular items (ids) and their scores, best first."""
        order = np.lexsort((self.item_ids, -self.popularity))[:n]
        return self.item_ids[order], self.popularity[order]


def window_events(events: pd.DataFrame, cutoff: pd.Timestamp, lookback: timedelta) -> pd.DataFrame:
    """Events in ``(cutoff - lookback, cutoff]``: the only ones a cutoff may see."""
    import pandas as pd

    cutoff = pd.Timestamp(cutoff)
    times = events["event_time"]
    mask = (times > cutoff - pd.Timedelta(lookback)) & (times <= cutoff)
    return events.loc[mask]


def generate_candidates(
    events: pd.DataFrame,
    *,
    cutoff: pd.Timestamp,
    lookback: timedelta,
    users: Iterable[str],
    config: CandidateConfig | None = None,
) -> tuple[pd.DataFrame, WindowStats]:
    """Candidates for each of ``users`` at ``cutoff`` from the events before it.

    Args:
        events: staged events (``user_id, item_id, category_id, event_type, event_time,
            order_id``); later events may be present, they are ignored.
        cutoff: the instant recommendations are made at.
        lookback: history a cutoff may use (``settings.task.lookback``).
        users: whom to generate for; users with no event in the window (cold start) get
            the popular and trending items only.
        config: per-source sizes.

    Returns:
        One row per (user_id, item_id): ``cutoff_time``, a 0/1 column ``src_<source>`` per
        source and the source scores ``cand_copurchase_score``, ``cand_category_share``,
        ``cand_popularity``, ``cand_popularity_rank``, ``cand_trend``; and the window's
        item statistics (for the cold-start list).
    """
    window = prepare_window(events, cutoff=cutoff, lookback=lookback, config=config)
    return window.candidates(users), window.stats


def prepare_window(
    events: pd.DataFrame,
    *,
    cutoff: pd.Timestamp,
    lookback: timedelta,
    config: CandidateConfig | None = None,
) -> CandidateWindow:
    """Everything about one cutoff's window that does not depend on whom it is for.

    Scans the events once: item statistics, the co-purchase matrix, each category's best
    sellers, and the window's rows grouped by user. Ranking many users in chunks (the
    serving snapshot) then costs one scan per cutoff instead of one per chunk.
    """
    import pandas as pd

    config = config or CandidateConfig()
    cutoff = pd.Timestamp(cutoff)
    window = window_events(events, cutoff, lookback)
    item_codes, item_index = pd.factorize(window["item_id"], sort=True)
    item_ids = np.asarray(item_index, dtype=object)
    stats = _window_stats(window, item_codes, item_ids, cutoff, lookback, config)
    user_codes, user_index = pd.factorize(window["user_id"])
    order = np.argsort(user_codes, kind="stable")
    order = order[user_codes[order] >= 0]
    counts = np.bincount(user_codes[order], minlength=len(user_index))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    kind = window["event_type"].to_numpy()
    seed_weights = pd.Series(kind, dtype=object).map(_SEED_WEIGHTS).fillna(0.0)
    seconds = (cutoff - window["event_time"]).dt.total_seconds().to_numpy()
    return CandidateWindow(
        cutoff=cutoff, config=config, stats=stats,
        user_index=pd.Index(user_index), starts=starts, counts=counts,
        item_codes=item_codes[order], seconds=seconds[order],
        seed_weights=seed_weights.to_numpy(dtype=np.float64)[order],
        category=window["category_id"].to_numpy()[order],
        has_category=window["category_id"].notna().to_numpy()[order],
        best=_category_best(stats, config), window=window, window_item_codes=item_codes,
    )


@dataclass
class CandidateWindow:
    """One cutoff's window prepared once (:func:`prepare_window`); ``candidates`` slices it.

    The per-event arrays are sorted by user, so a chunk of users reads only its own rows.
    """

    cutoff: pd.Timestamp
    config: CandidateConfig
    stats: WindowStats
    user_index: pd.Index  # window user code -> user id
    starts: np.ndarray  # per window user code: first row in the arrays below
    counts: np.ndarray  # per window user code: number of rows
    item_codes: np.ndarray
    seconds: np.ndarray  # cutoff - event_time
    seed_weights: np.ndarray
    category: np.ndarray
    has_category: np.ndarray
    best: pd.DataFrame  # c, i: each category's best sellers
    window: pd.DataFrame  # the window's events, for the co-purchase matrix
    window_item_codes: np.ndarray  # item code per window row (window order)

    @functools.cached_property
    def co(self) -> Any:
        """Cosine-normalised item-item co-occurrence, each row cut to its ``neighbours``
        best items (scipy csr), or None; built on first use, so item statistics alone
        (cold start, no users) never pay for it."""
        if not len(self.stats.item_ids) or self.config.copurchase <= 0:
            return None
        return _cooccurrence(self.window, self.window_item_codes, len(self.stats.item_ids),
                             self.config)

    @functools.cached_property
    def popular_order(self) -> np.ndarray:
        """Item codes by popularity, best first (ties: item id); sorted once per window,
        not once per chunk of users (a lexsort of the text ids)."""
        stats = self.stats
        order: np.ndarray = np.lexsort((stats.item_ids, -stats.popularity))
        return order

    @functools.cached_property
    def popularity_rank(self) -> np.ndarray:
        """Per item code: its 1-based place in :attr:`popular_order`."""
        rank = np.empty(len(self.stats.item_ids))
        rank[self.popular_order] = np.arange(1, len(rank) + 1)
        return rank

    @functools.cached_property
    def rising(self) -> np.ndarray:
        """The ``config.trending`` items (codes) with the largest positive trend."""
        stats = self.stats
        rising = np.flatnonzero(stats.trend > 0)
        ordered: np.ndarray = rising[np.lexsort((stats.item_ids[rising], -stats.trend[rising]))]
        return ordered[: self.config.trending]

    def candidates(self, users: Iterable[str]) -> pd.DataFrame:
        """Candidates of ``users`` (see :func:`generate_candidates`), reading only their rows."""
        user_list, coded = self.coded_candidates(users)
        if coded is None:
            return _empty(self.cutoff)
        return self.with_ids(user_list, coded)

    def with_ids(self, user_list: pd.Index, coded: pd.DataFrame) -> pd.DataFrame:
        """:meth:`coded_candidates`' frame with its codes turned into ``user_id``,
        ``item_id`` and ``cutoff_time`` (the first three columns), as ``candidates`` returns."""
        frame = coded.copy(deep=False)  # new columns, the same arrays
        frame.insert(0, "user_id", user_list.to_numpy()[frame.pop("u").to_numpy()])
        frame.insert(1, "item_id", self.stats.item_ids[frame.pop("i").to_numpy()])
        frame.insert(2, "cutoff_time", self.cutoff)
        return frame

    def coded_candidates(self, users: Iterable[str]) -> tuple[pd.Index, pd.DataFrame | None]:
        """The users (deduplicated, in order) and their candidates with integer codes.

        One row per (user, item), sorted by ``u`` (position in the returned users) then
        ``i`` (item code: sorted item ids), so by user then item id; then the columns of
        :func:`generate_candidates` after the ids. None when there is nothing to rank.
        Callers that join on codes (the serving snapshot) never hash the text ids.
        """
        import pandas as pd

        config, stats = self.config, self.stats
        user_list = pd.Index(pd.unique(pd.Series(list(users), dtype=object)))
        n_items = len(stats.item_ids)
        if n_items == 0 or len(user_list) == 0:
            return user_list, None
        found = self.user_index.get_indexer(user_list)
        present = np.flatnonzero(found >= 0)
        lengths = self.counts[found[present]]
        total = int(lengths.sum())
        offsets = np.repeat(self.starts[found[present]] - (np.cumsum(lengths) - lengths),
                            lengths)
        rows = offsets + np.arange(total, dtype=np.int64)
        users_of_rows = np.repeat(present, lengths)
        items_of_rows = self.item_codes[rows]

        parts: list[tuple[np.ndarray, np.ndarray, str, np.ndarray]] = []
        # recent: each user's items, most recently touched first
        pairs = pd.DataFrame({"u": users_of_rows, "i": items_of_rows, "s": self.seconds[rows],
                              "w": self.seed_weights[rows]})
        last = pairs.groupby(["u", "i"], sort=False).agg(s=("s", "min"), w=("w", "sum"))
        last = last.reset_index().sort_values(["u", "s", "i"], kind="mergesort")
        last = last[last.groupby("u").cumcount() < config.recent]
        parts.append((last["u"].to_numpy(), last["i"].to_numpy(), "recent",
                      np.zeros(len(last))))

        # co-purchase neighbours of the user's recent items
        if config.copurchase > 0:
            u, i, s = _copurchase_top(self.co, last["u"].to_numpy(), last["i"].to_numpy(),
                                      last["w"].to_numpy(), len(user_list), n_items, config)
            parts.append((u, i, "copurchase", s))

        # favourite categories' best sellers
        if config.category > 0 and config.favourite_categories > 0:
            has = self.has_category[rows]
            u, i, s = _category_items(users_of_rows[has], self.category[rows][has], self.best,
                                      config)
            parts.append((u, i, "category", s))

        # global popularity and trending: the same items for everyone (cold start included)
        everyone = np.arange(len(user_list))
        top = self.popular_order[: config.popular]
        parts.append((np.repeat(everyone, len(top)), np.tile(top, len(everyone)), "popular",
                      np.zeros(len(everyone) * len(top))))
        rising = self.rising
        parts.append((np.repeat(everyone, len(rising)), np.tile(rising, len(everyone)),
                      "trending", np.zeros(len(everyone) * len(rising))))

        frame = _union(parts)
        codes = frame["i"].to_numpy()
        frame["cand_popularity"] = stats.popularity[codes]
        frame["cand_popularity_rank"] = self.popularity_rank[codes]
        frame["cand_trend"] = stats.trend[codes]
        frame["category_id"] = stats.category[codes]
        return user_list, frame.reset_index(drop=True)


def _empty(cutoff: pd.Timestamp) -> pd.DataFrame:
    import pandas as pd

    columns = ["user_id", "item_id", "cutoff_time", *(f"src_{s}" for s in SOURCES),
               "cand_copurchase_score", "cand_category_share", "cand_popularity",
               "cand_popularity_rank", "cand_trend", "category_id"]
    return pd.DataFrame({c: pd.Series(dtype=object if c in ("user_id", "item_id", "category_id")
                                      else "float64") for c in columns}).assign(cutoff_time=cutoff)


def _window_stats(window: pd.DataFrame, item_codes: np.ndarray, item_ids: np.ndarray,
                  cutoff: pd.Timestamp, lookback: timedelta,
                  config: CandidateConfig) -> WindowStats:
    import pandas as pd

    n_items = len(item_ids)
    kind = window["event_type"].to_numpy()
    weight = np.where(kind == "purchase", 1.0, np.where(kind == "return", 0.0, _VIEW_POPULARITY))
    popularity = np.bincount(item_codes, weights=weight, minlength=n_items)
    trend_span = min(config.trend_window, lookback)
    recent = (window["event_time"] > cutoff - pd.Timedelta(trend_span)).to_numpy()
    recent_pop = np.bincount(item_codes[recent], weights=weight[recent], minlength=n_items)
    first = window["event_time"].min() if len(window) else cutoff
    span = max((cutoff - max(first, cutoff - pd.Timedelta(lookback))).total_seconds(), 1.0)
    expected = popularity * min(trend_span.total_seconds() / span, 1.0)
    trend = recent_pop - expected
    categories = np.full(n_items, None, dtype=object)
    has_cat = window["category_id"].notna().to_numpy()
    if has_cat.any():
        # the latest category an item was seen with
        order = np.argsort(window["event_time"].to_numpy()[has_cat], kind="stable")
        categories[item_codes[has_cat][order]] = window["category_id"].to_numpy()[has_cat][order]
    return WindowStats(cutoff=cutoff, item_ids=item_ids, popularity=popularity, trend=trend,
                       category=categories)


def _cooccurrence(window: pd.DataFrame, item_codes: np.ndarray, n_items: int,
                 config: CandidateConfig) -> Any:
    """Item-item co-occurrence in baskets, cosine-normalised so best sellers do not
    neighbour everything (None when no basket holds two items)."""
    import pandas as pd
    from scipy import sparse

    # a basket is an order; events without one form a basket per user and day
    order_codes, orders = pd.factorize(window["order_id"])
    user_codes, _ = pd.factorize(window["user_id"])
    days = window["event_time"].to_numpy().astype("datetime64[D]").astype(np.int64)
    user_day = user_codes.astype(np.int64) * (int(days.max() - days.min()) + 1) + (days - days.min())
    user_day_codes, _ = pd.factorize(user_day)
    basket_codes = np.where(order_codes >= 0, order_codes, len(orders) + user_day_codes)
    pairs = np.unique(np.stack([basket_codes, item_codes]), axis=1)
    if pairs.size == 0:
        return None
    sizes = np.bincount(pairs[0])
    keep = (sizes[pairs[0]] >= 2) & (sizes[pairs[0]] <= config.max_basket_items)
    pairs = pairs[:, keep]
    if pairs.size == 0:
        return None
    baskets = sparse.csr_matrix(
        (np.ones(pairs.shape[1], np.float32), (pairs[0], pairs[1])),
        shape=(int(basket_codes.max()) + 1, n_items),
    )
    co = (baskets.T @ baskets).tocsr()
    co.setdiag(0)
    co.eliminate_zeros()
    degree = np.asarray(baskets.sum(axis=0)).ravel()
    norm = 1.0 / np.sqrt(np.maximum(degree, 1.0))
    cosine = sparse.diags(norm.astype(np.float32)) @ co @ sparse.diags(norm.astype(np.float32))
    rows, cols, values = _top_per_row(cosine.tocsr(), config.neighbours)
    return sparse.csr_matrix((values, (rows, cols)), shape=(n_items, n_items))


def _top_per_row(matrix: Any, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``n`` largest positive entries of each row of a scipy csr matrix.

    Ties go to the lower column (item codes follow sorted item ids), so the choice is
    deterministic and a row's result does not depend on the other rows. Sorting the
    non-zeros costs ``O(nnz log nnz)``: a dense row per user would cost users x catalogue.
    One stable sort on ``row << 32 | ~bits(value)`` does it: a positive float32's bits
    order like its value, and a canonical csr already lists each row's columns ascending.

    Returns:
        Row, column and value of every kept entry, rows ascending, best first within a row.
    """
    matrix.sum_duplicates()  # canonical: no duplicates, columns sorted within each row
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.uint64), np.diff(matrix.indptr))
    cols, values = matrix.indices.astype(np.int64), matrix.data.astype(np.float32)
    positive = values > 0
    rows, cols, values = rows[positive], cols[positive], values[positive]
    descending = np.uint64(0xFFFFFFFF) - values.view(np.uint32).astype(np.uint64)
    order = np.argsort((rows << np.uint64(32)) | descending, kind="stable")
    rows, cols, values = rows[order], cols[order], values[order]
    rows = rows.astype(np.int64)
    counts = np.bincount(rows, minlength=matrix.shape[0])
    rank = np.arange(len(rows)) - (np.cumsum(counts) - counts)[rows]
    keep = rank < n
    return rows[keep], cols[keep], values[keep]


def _copurchase_top(co: Any, seed_users: np.ndarray, seed_items: np.ndarray,
                    seed_weights: np.ndarray, n_users: int, n_items: int,
                    config: CandidateConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top ``config.copurchase`` items per user of ``S @ C``: S = the user's weighted seed
    items, C = ``co`` (each item's kNN row).

    Sparse throughout, in blocks of ``config.batch_users`` users: a block's product has at
    most ``seeds x neighbours`` non-zeros per user, so time and memory grow with the
    users' seeds, not with users x catalogue (a dense row per user did).
    """
    from scipy import sparse

    if co is None or len(seed_users) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    seeds = sparse.csr_matrix(
        (seed_weights.astype(np.float32), (seed_users, seed_items)), shape=(n_users, n_items)
    )
    seeds.sum_duplicates()
    out_u, out_i, out_s = [], [], []
    for start in range(0, n_users, config.batch_users):
        block = (seeds[start:start + config.batch_users] @ co).tocsr()
        rows, cols, scores = _top_per_row(block, config.copurchase)
        out_u.append(rows + start)
        out_i.append(cols)
        out_s.append(scores.astype(np.float64))
    return np.concatenate(out_u), np.concatenate(out_i), np.concatenate(out_s)


def _category_best(stats: WindowStats, config: CandidateConfig) -> pd.DataFrame:
    """Each category's ``config.category`` best sellers (``c, i``)."""
    import pandas as pd

    items = pd.DataFrame({"i": np.arange(len(stats.item_ids)), "c": stats.category,
                          "p": stats.popularity, "id": stats.item_ids})
    items = items[items["c"].notna()].sort_values(["c", "p", "id"], ascending=[True, False, True],
                                                  kind="mergesort")
    return items[items.groupby("c").cumcount() < config.category][["c", "i"]]


def _category_items(users: np.ndarray, categories: np.ndarray, best: pd.DataFrame,
                    config: CandidateConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best sellers of each user's favourite categories, scored by the category's share."""
    import pandas as pd

    if len(users) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    counts = pd.DataFrame({"u": users, "c": categories})
    counts = counts.groupby(["u", "c"], sort=False).size().rename("n").reset_index()
    counts["share"] = counts["n"] / counts.groupby("u")["n"].transform("sum")
    counts = counts.sort_values(["u", "n", "c"], ascending=[True, False, True], kind="mergesort")
    favourites = counts[counts.groupby("u").cumcount() < config.favourite_categories]
    joined = favourites.merge(best, on="c", how="inner")
    return (joined["u"].to_numpy(np.int64), joined["i"].to_numpy(np.int64),
            joined["share"].to_numpy(np.float64))


def _union(parts: list[tuple[np.ndarray, np.ndarray, str, np.ndarray]]) -> pd.DataFrame:
    """One row per (user, item), sorted by both, with a flag per source and the best score
    of each (a group-by max on one int64 key per pair: a pandas group-by on two columns
    was a large share of a serving snapshot chunk's candidates)."""
    import pandas as pd

    users = np.concatenate([p[0] for p in parts]).astype(np.int64)
    items = np.concatenate([p[1] for p in parts]).astype(np.int64)
    source = np.concatenate([np.full(len(p[0]), SOURCES.index(p[2])) for p in parts])
    scores = np.concatenate([np.asarray(p[3], dtype=np.float64) for p in parts])
    key = users * (int(items.max()) + 1 if len(items) else 1) + items
    order = np.argsort(key, kind="stable")
    first = np.flatnonzero(np.diff(key[order], prepend=-1) != 0)
    columns: dict[str, np.ndarray] = {"u": users[order][first], "i": items[order][first]}
    for k, s in enumerate(SOURCES):
        columns[f"src_{s}"] = _group_max(np.where(source == k, 1.0, 0.0)[order], first)
    for name, s in (("cand_copurchase_score", "copurchase"), ("cand_category_share", "category")):
        values = np.where(source == SOURCES.index(s), scores, 0.0)
        columns[name] = _group_max(values[order], first)
    return pd.DataFrame(columns)


def _group_max(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The largest of each run of ``values`` beginning at ``starts``, NaN skipped (as
    pandas' group-by max skips it; NaN only where a whole run is NaN)."""
    if len(values) == 0:
        return values.astype(np.float64)
    out: np.ndarray = np.fmax.reduceat(values, starts)
    return out


def candidate_recall(candidates: pd.DataFrame, labels: pd.DataFrame) -> dict[str, float]:
    """Share of the items bought after each cutoff that the candidates contain.

    Args:
        candidates: ``user_id, item_id, cutoff_time`` rows.
        labels: the bought items, ``user_id, item_id, cutoff_time`` (purchase_item_labels).

    Returns:
        ``recall_items`` (over all bought pairs), ``recall_users`` (mean over buyers),
        ``candidates_per_user`` and the number of pairs and buyers measured.
    """
    keys = ["user_id", "item_id", "cutoff_time"]
    sources = [c for c in candidates.columns if c.startswith("src_")]
    found = labels[keys].merge(
        candidates[keys + sources].drop_duplicates(keys).assign(_hit=1.0), on=keys, how="left"
    )
    found["_hit"] = found["_hit"].fillna(0.0)
    per_user = found.groupby(["user_id", "cutoff_time"])["_hit"].mean()
    per_cand = candidates.groupby(["user_id", "cutoff_time"]).size()
    out = {
        "recall_items": float(found["_hit"].mean()) if len(found) else float("nan"),
        "recall_users": float(per_user.mean()) if len(per_user) else float("nan"),
        "candidates_per_user": float(per_cand.mean()) if len(per_cand) else 0.0,
        "bought_pairs": int(len(found)),
        "buyers": int(len(per_user)),
    }
    for column in sources:  # what each source finds on its own
        hits = found[column].fillna(0.0) > 0
        out[f"recall_items:{column[4:]}"] = float(hits.mean()) if len(found) else float("nan")
    return out
