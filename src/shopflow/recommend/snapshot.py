"""The serving snapshot: every known user's ranked list at the newest cutoff, precomputed.

Ranking a user's candidates needs their events, five marts and a model: far too slow
for one HTTP request. So when a ranker is saved, its lists for every user active in the
lookback before the newest event (the dbt serving cutoff) are computed once, together
with the popularity list (cold start) and what each user already bought
(``exclude_purchased``). A request is then a dictionary lookup.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from shopflow.recommend.candidates import CandidateConfig, generate_candidates, prepare_window
from shopflow.recommend.dataset import feature_frame, fill_interactions

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

    from shopflow.recommend.candidates import CandidateWindow
    from shopflow.recommend.rankers import RankerModel
    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

DEPTH = 100
#: The marts keyed by user that the snapshot reads a page of users at a time.
USER_MARTS = ("user_features", "user_item_features", "user_category_features")
#: Chunks of ``batch_users`` per page of mart rows read from the warehouse.
PAGE_CHUNKS = 20
_FILES = ("ranked", "popular", "purchased")


@dataclass
class ServingSnapshot:
    """Precomputed answers at ``cutoff``.

    Attributes:
        cutoff: the instant the lists were computed at (newest event).
        ranked: ``user_id, item_id, score, rank``, up to ``DEPTH`` rows per known user.
        popular: ``item_id, score``, best first: the cold-start list and the filler.
        purchased: ``user_id, item_id`` bought at or before the cutoff.
    """

    cutoff: pd.Timestamp
    ranked: pd.DataFrame
    popular: pd.DataFrame
    purchased: pd.DataFrame

    def save(self, folder: Path) -> None:
        import pandas as pd

        from shopflow.atomic import atomic_path

        folder.mkdir(parents=True, exist_ok=True)
        frames = {name: getattr(self, name) for name in _FILES}
        frames["cutoff"] = pd.DataFrame({"cutoff": [self.cutoff]})
        for name, frame in frames.items():  # each file whole or not at all (crash-safe)
            with atomic_path(folder / f"{name}.parquet") as tmp:
                frame.to_parquet(tmp, index=False)

    @classmethod
    def load(cls, folder: Path) -> ServingSnapshot:
        import pandas as pd

        frames = {name: pd.read_parquet(folder / f"{name}.parquet") for name in _FILES}
        cutoff = pd.Timestamp(pd.read_parquet(folder / "cutoff.parquet")["cutoff"].iloc[0])
        return cls(cutoff=cutoff, **frames)


def serving_cutoff(settings: Settings) -> pd.Timestamp:
    """The dbt serving snapshot's cutoff (newest event), else the newest training cutoff."""
    from shopflow.recommend.data import load_cutoffs

    cutoffs = load_cutoffs(settings)
    if cutoffs.empty:
        raise ValueError("int_cutoffs is empty: the warehouse holds no events")
    serving = cutoffs.loc[~cutoffs["is_training_cutoff"], "cutoff_time"]
    newest: pd.Timestamp = (serving if len(serving) else cutoffs["cutoff_time"]).max()
    return newest


def build_snapshot(
    settings: Settings,
    model: RankerModel,
    *,
    events: pd.DataFrame | None = None,
    config: CandidateConfig | None = None,
    depth: int = DEPTH,
    batch_users: int = 1000,
) -> ServingSnapshot:
    """Rank every known user's candidates at the serving cutoff with ``model``.

    The serving cutoff's window is read once (``events`` when given, else the
    warehouse); users are ranked ``batch_users`` at a time, so the model inputs of one
    chunk (about 100 candidates x ~100 features per user) are what the chunk costs.

    The inputs a chunk is scored on are those of
    :func:`~shopflow.recommend.dataset.feature_frame`'s frame (same columns and values,
    bit for bit), but joined on integer codes: users by place in the sorted serving
    users, items by window item code, categories by a code per category. The marts' text
    ids are coded once per page of users; a chunk's hundreds of thousands of candidate
    rows never hash a text id. And no chunk joins a frame: each mart row's model inputs
    (:meth:`RankerModel.encode`) are computed once per page (items once) and gathered
    per candidate, so only the candidate columns are encoded row by row (encoding a
    user's ~70 columns on each of their ~100 candidates was most of the scoring time).
    """
    import pandas as pd

    from shopflow.recommend.data import EventWindows, load_mart

    started = time.perf_counter()
    windows = EventWindows(settings, events)
    cutoff = serving_cutoff(settings)
    users = serving_users(settings, cutoff)
    lookback_days = settings.task.lookback.total_seconds() / 86_400
    # once per cutoff: the candidate window and the item features; the user-keyed marts
    # are read a page of users at a time (a range of the sorted users), so no mart is
    # held whole
    window = prepare_window(windows.window(cutoff, settings.task.lookback), cutoff=cutoff,
                            lookback=settings.task.lookback, config=config)
    codes = _Codes.of(users, window)
    item_frame = load_mart(settings, "item_features", cutoffs=[cutoff])
    items = _KeyedRows.of(item_frame, codes.items_of(item_frame), ["item_id", "cutoff_time"])
    page_users = batch_users * PAGE_CHUNKS
    layout: _Layout | None = None
    item_inputs = np.zeros((0, 0))
    user_codes = model.codes("users", users)  # the predictor's vocabulary codes, once
    item_codes = model.codes("items", window.stats.item_ids)
    pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for page_start in range(0, len(users), page_users):
        page = users[page_start:page_start + page_users]
        marts = {name: load_user_range(settings, name, cutoff, page[0], page[-1])
                 for name in USER_MARTS}
        keyed = {**_page_rows(marts, codes), "item_features": items}
        if layout is None:  # every page has the same columns
            layout = _Layout.of(model, {name: list(rows.values.columns)
                                        for name, rows in keyed.items()})
            item_inputs = _encoded_rows(model, items, layout.sources["item_features"],
                                        lookback_days)
        # each mart row's model inputs, once per page; a candidate gathers its rows'
        inputs = {name: _encoded_rows(model, keyed[name], layout.sources[name], lookback_days)
                  for name in USER_MARTS}
        inputs["item_features"] = item_inputs
        expected: list[str] | None = None
        for start in range(0, len(page), batch_users):
            chunk = page[start:start + batch_users]
            user_list, coded = window.coded_candidates(chunk)
            if coded is None or coded.empty:
                continue
            u = coded["u"].to_numpy(np.int64) + (page_start + start)  # chunk: unique, sorted
            i = coded["i"].to_numpy(np.int64)
            if expected is None:  # the columns feature_frame's merges give, once per page
                candidates = window.with_ids(user_list, coded.iloc[:0])
                expected = _merged_columns(candidates, marts, item_frame, lookback_days)
                columns = [*candidates.columns, *(column for name in _JOINED
                                                  for column in keyed[name].values.columns)]
                if columns != expected:
                    raise RuntimeError(f"snapshot features {columns} differ from "
                                       f"feature_frame's {expected}")
            rows = {"user_item_features": codes.user_item(u, i),
                    "user_category_features": codes.user_category(u, codes.item_category[i]),
                    "item_features": i, "user_features": u}
            x = layout.inputs(model, coded, {name: inputs[name][keyed[name].positions(keys)]
                                             for name, keys in rows.items()})
            scores = model.forward(None if user_codes is None else user_codes[u],
                                   None if item_codes is None else item_codes[i], x)
            pieces.append(_best(u, i, scores, depth))
            done = page_start + min(start + batch_users, len(page))
            logger.info("snapshot: ranked %d/%d users (%.0f users/s)", done, len(users),
                        done / max(time.perf_counter() - started, 1e-9))
        del marts, keyed, inputs
    stats = window.stats
    u, i, score, rank = (np.concatenate([p[k] for p in pieces]) if pieces
                         else np.zeros(0, np.int64 if k != 2 else np.float64) for k in range(4))
    ranked = pd.DataFrame({"user_id": pd.Series(users[u], dtype=object),
                           "item_id": pd.Series(stats.item_ids[i], dtype=object),
                           "score": score, "rank": rank})
    items_best, scores = stats.popular_items(depth)
    snapshot = ServingSnapshot(
        cutoff=cutoff,
        ranked=ranked,
        popular=pd.DataFrame({"item_id": items_best, "score": scores}),
        purchased=windows.purchased(cutoff),
    )
    logger.info("snapshot at %s: %d users, %d rows in %.1fs", cutoff, len(users),
                len(snapshot.ranked), time.perf_counter() - started)
    return snapshot


@dataclass
class _Codes:
    """Integer codes the snapshot joins on (-1: not a serving user, item or category).

    Users: place in the sorted serving users; items: the window's item codes (sorted
    ids; only window items are candidates); categories: place in ``categories``, with
    one more code for a missing category (a merge on text keys pairs missing with
    missing, so the codes do too).
    """

    users: pd.Index
    items: pd.Index
    categories: pd.Index
    item_category: np.ndarray  # per item code: the category code its candidates carry

    @classmethod
    def of(cls, users: np.ndarray, window: CandidateWindow) -> _Codes:
        import pandas as pd

        category = window.stats.category
        known = pd.Index(pd.unique(category[pd.notna(category)]))
        return cls(users=pd.Index(users), items=pd.Index(window.stats.item_ids),
                   categories=known, item_category=_category_codes(known, category))

    def user_of(self, ids: pd.Series) -> np.ndarray:
        import pandas as pd

        return np.asarray(self.users.get_indexer(pd.Index(ids)), dtype=np.int64)

    def items_of(self, frame: pd.DataFrame) -> np.ndarray:
        import pandas as pd

        return np.asarray(self.items.get_indexer(pd.Index(frame["item_id"])), dtype=np.int64)

    def category_of(self, ids: pd.Series) -> np.ndarray:
        return _category_codes(self.categories, ids.to_numpy())

    def user_item(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        """One int64 key per (user, item); -1 where either is unknown."""
        return np.where((u >= 0) & (i >= 0), u * len(self.items) + i, -1)

    def user_category(self, u: np.ndarray, c: np.ndarray) -> np.ndarray:
        """One int64 key per (user, category); -1 where either is unknown."""
        return np.where((u >= 0) & (c >= 0), u * (len(self.categories) + 1) + c, -1)


def _category_codes(categories: pd.Index, ids: np.ndarray) -> np.ndarray:
    """Place of each id in ``categories``; ``len(categories)`` for a missing id."""
    import pandas as pd

    out = np.asarray(categories.get_indexer(pd.Index(ids)), dtype=np.int64)
    out[np.asarray(pd.isna(ids))] = len(categories)
    return out


@dataclass
class _KeyedRows:
    """A mart's non-key columns with one int64 key per row, sorted by key (a left join
    is then a binary search and a take)."""

    keys: np.ndarray
    values: pd.DataFrame

    @classmethod
    def of(cls, frame: pd.DataFrame, keys: np.ndarray, key_columns: list[str]) -> _KeyedRows:
        """``frame``'s rows with a known key (>= 0), without ``key_columns``.

        Raises:
            ValueError: two rows share a key (the marts have one row per key; a merge
                would multiply the candidate's row).
        """
        rows = np.flatnonzero(keys >= 0)
        rows = rows[np.argsort(keys[rows], kind="stable")]
        ordered = keys[rows]
        if len(ordered) > 1 and not (np.diff(ordered) > 0).all():
            raise ValueError(f"{key_columns} do not identify the rows of a mart "
                             f"({int((np.diff(ordered) == 0).sum())} repeated keys)")
        values = frame.drop(columns=key_columns).iloc[rows].reset_index(drop=True)
        return cls(keys=ordered, values=values)

    def positions(self, keys: np.ndarray) -> np.ndarray:
        """The row of each of ``keys``; ``len(self.keys)`` (one past the last) where none
        matches."""
        at = np.searchsorted(self.keys, keys)
        found = at < len(self.keys)
        found[found] = self.keys[at[found]] == keys[found]
        return np.where(found & (keys >= 0), at, len(self.keys))

    def take(self, keys: np.ndarray) -> pd.DataFrame:
        """The values of each of ``keys``' rows, all-missing where none matches (dtypes
        widened as a left merge widens them: integers to float64 when one is missing)."""
        at = self.positions(keys)
        return self.values.reindex(np.where(at < len(self.keys), at, -1)).reset_index(drop=True)


def _encoded_rows(model: RankerModel, rows: _KeyedRows, columns: np.ndarray,
                  lookback_days: float) -> np.ndarray:
    """``model``'s inputs of ``columns`` (positions in its features) for each of a mart's
    rows, and one more row for a key the mart lacks: :meth:`_KeyedRows.positions` indexes
    the result directly.

    The rows are what :meth:`_KeyedRows.take` gives a candidate (the extra one all
    missing, as a left merge leaves it), filled by :func:`fill_interactions` as the
    joined frame is; encoding is entry by entry, so these rows gathered per candidate
    equal the candidates' joined rows encoded, with each mart row encoded once (a user's
    ~70 columns once, not on each of their ~100 candidates).
    """
    frame = rows.take(np.append(rows.keys, -1))  # every row, then the all-missing one
    fill_interactions(frame, lookback_days=lookback_days)
    return model.encode(model.matrix(frame, columns), columns)


#: The marts a candidate's features are joined from, in :func:`feature_frame`'s order.
_JOINED = ("user_item_features", "user_category_features", "item_features", "user_features")


@dataclass
class _Layout:
    """Where each of the model's features comes from (positions in ``feature_names``):
    ``candidates`` (the candidate columns, and any feature no mart has: missing, as
    :meth:`RankerModel.matrix` leaves it), else the first mart in :data:`_JOINED` order
    that has it."""

    sources: dict[str, np.ndarray]

    @classmethod
    def of(cls, model: RankerModel, columns: dict[str, list[str]]) -> _Layout:
        """``columns``: each mart's value columns."""
        taken: set[int] = set()
        sources: dict[str, np.ndarray] = {}
        for name in _JOINED:
            mine = set(columns[name])
            positions = [j for j, feature in enumerate(model.feature_names)
                         if feature in mine and j not in taken]
            taken.update(positions)
            sources[name] = np.asarray(positions, np.int64)
        rest = [j for j in range(len(model.feature_names)) if j not in taken]
        return cls(sources={"candidates": np.asarray(rest, np.int64), **sources})

    @functools.cached_property
    def _targets(self) -> dict[str, np.ndarray | slice]:
        """Each source's positions, as a slice when they are a run (they are, in the
        merge order: a slice copies each row's run at once, an index array value by value)."""
        return {name: _run(positions) for name, positions in self.sources.items()}

    def inputs(self, model: RankerModel, candidates: pd.DataFrame,
               joined: dict[str, np.ndarray]) -> np.ndarray:
        """The model's inputs of each candidate row: the candidate columns encoded, each
        mart's columns as given in ``joined`` (its rows' inputs, one row per candidate)."""
        positions = self.sources["candidates"]
        own = model.encode(model.matrix(candidates, positions), positions)
        out = np.empty((len(candidates), len(model.feature_names)), dtype=own.dtype)
        for name, target in self._targets.items():
            out[:, target] = own if name == "candidates" else joined[name]
        return out


def _run(positions: np.ndarray) -> np.ndarray | slice:
    """``positions`` as a slice when they are consecutive and ascending, else as they are."""
    if len(positions) and (np.diff(positions) == 1).all():
        return slice(int(positions[0]), int(positions[-1]) + 1)
    return positions


def _page_rows(marts: dict[str, pd.DataFrame], codes: _Codes) -> dict[str, _KeyedRows]:
    """One page's user-keyed marts keyed by codes (their text ids hashed once per page)."""
    ui, uc = marts["user_item_features"], marts["user_category_features"]
    users = marts["user_features"]
    u_ui = codes.user_of(ui["user_id"])
    u_uc = codes.user_of(uc["user_id"])
    return {
        "user_item_features": _KeyedRows.of(
            ui.drop(columns=["category_id", "last_event_time"], errors="ignore"),
            codes.user_item(u_ui, codes.items_of(ui)), ["user_id", "item_id", "cutoff_time"]),
        "user_category_features": _KeyedRows.of(
            uc, codes.user_category(u_uc, codes.category_of(uc["category_id"])),
            ["user_id", "category_id", "cutoff_time"]),
        "user_features": _KeyedRows.of(users, codes.user_of(users["user_id"]),
                                       ["user_id", "cutoff_time"]),
    }


def _merged_columns(frame: pd.DataFrame, marts: dict[str, pd.DataFrame],
                    item_frame: pd.DataFrame, lookback_days: float) -> list[str]:
    """The columns :func:`feature_frame` gives for the chunk's candidates (merged on no rows)."""
    columns = list(frame.columns)
    candidates = frame[columns[:columns.index("category_id") + 1]].iloc[:0]
    empty = {name: mart.iloc[:0] for name, mart in marts.items()}
    empty["item_features"] = item_frame.iloc[:0]
    return list(feature_frame(candidates, empty, lookback_days=lookback_days).columns)


def _best(u: np.ndarray, i: np.ndarray, scores: np.ndarray,
          depth: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The best ``depth`` rows per user: user and item codes, score, rank.

    :func:`~shopflow.recommend.evaluate.top_k`'s order (user, score descending, item id)
    on codes: user codes follow the sorted user ids, item codes the sorted item ids.
    """
    order = np.lexsort((i, -scores, u))
    u, i, scores = u[order], i[order], scores[order]
    first = np.concatenate([[True], u[1:] != u[:-1]]) if len(u) else np.zeros(0, bool)
    starts = np.flatnonzero(first)
    rank = np.arange(len(u)) - np.repeat(starts, np.diff(np.append(starts, len(u)))) + 1
    keep = rank <= depth
    return u[keep], i[keep], scores[keep], rank[keep].astype(np.int64)


def serving_users(settings: Settings, cutoff: pd.Timestamp) -> np.ndarray:
    """Every user with a ``user_features`` row at ``cutoff``, sorted (text ids)."""
    from shopflow.recommend.data import load_mart_column

    ids = load_mart_column(settings, "user_features", "user_id", cutoff)
    return np.asarray(sorted(ids), dtype=object)


def load_user_range(settings: Settings, name: str, cutoff: pd.Timestamp, first: str,
                    last: str) -> pd.DataFrame:
    """A user-keyed mart's rows at ``cutoff`` whose user is in ``[first, last]``."""
    from shopflow.recommend.data import load_mart

    return load_mart(settings, name, cutoffs=[cutoff], users=(first, last))


def popularity_snapshot(settings: Settings, *, events: pd.DataFrame | None = None,
                        depth: int = DEPTH) -> ServingSnapshot:
    """A snapshot with no ranker: every user gets the popularity list (cold start)."""
    import pandas as pd

    from shopflow.recommend.data import EventWindows

    windows = EventWindows(settings, events)
    newest = windows.newest()
    cutoff = newest if newest is not None else pd.Timestamp("1970-01-01")
    lookback = settings.task.lookback
    _, stats = generate_candidates(windows.window(cutoff, lookback), cutoff=cutoff,
                                   lookback=lookback, users=[])
    items, scores = stats.popular_items(depth)
    bought = windows.purchased()
    return ServingSnapshot(
        cutoff=cutoff,
        ranked=pd.DataFrame({"user_id": pd.Series(dtype=object), "item_id": pd.Series(dtype=object),
                             "score": pd.Series(dtype="float64"), "rank": pd.Series(dtype="int64")}),
        popular=pd.DataFrame({"item_id": items, "score": scores}),
        purchased=bought.reset_index(drop=True),
    )


def published_popularity_snapshot(settings: Settings, *, depth: int = DEPTH) -> ServingSnapshot:
    """Popularity from the last *published* marts (``item_features`` at its newest cutoff).

    The published Parquet snapshots are what passed the marts quality gate, and reading
    them takes no warehouse lock, so a serving process can use them while a DAG run is
    writing the warehouse. Items are scored as candidate generation scores popularity
    (purchases, plus a small weight for views and carts). Nobody has a personal list and
    purchases are unknown (``exclude_purchased`` has nothing to exclude).

    Raises:
        FileNotFoundError: nothing was published yet.
        ValueError: the published item features are empty.
    """
    import pandas as pd
    import pyarrow.parquet as pq

    from shopflow.recommend.candidates import _VIEW_POPULARITY
    from shopflow.transform import marts_dir

    path = marts_dir(settings) / "item_features.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"no published item_features at {path} (no pipeline run yet)")
    items = pq.read_table(path, columns=["item_id", "cutoff_time", "item_views_lookback",
                                         "item_carts_lookback", "item_purchases_lookback"]
                          ).to_pandas()
    if items.empty:
        raise ValueError(f"the published item_features at {path} are empty")
    cutoff = pd.Timestamp(items["cutoff_time"].max())
    latest = items[items["cutoff_time"] == cutoff]
    score = (latest["item_purchases_lookback"].fillna(0.0)
             + _VIEW_POPULARITY * (latest["item_views_lookback"].fillna(0.0)
                                   + latest["item_carts_lookback"].fillna(0.0)))
    popular = (pd.DataFrame({"item_id": latest["item_id"].astype(str).to_numpy(),
                             "score": score.to_numpy(dtype=np.float64)})
               .sort_values(["score", "item_id"], ascending=[False, True], kind="mergesort")
               .head(depth).reset_index(drop=True))
    return ServingSnapshot(
        cutoff=cutoff,
        ranked=pd.DataFrame({"user_id": pd.Series(dtype=object), "item_id": pd.Series(dtype=object),
                             "score": pd.Series(dtype="float64"), "rank": pd.Series(dtype="int64")}),
        popular=popular,
        purchased=pd.DataFrame({"user_id": pd.Series(dtype=object),
                                "item_id": pd.Series(dtype=object)}),
    )
