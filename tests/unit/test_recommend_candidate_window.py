"""Candidates prepared once per cutoff answer exactly as one pass per group of users did.

The serving snapshot ranks every known user in chunks; the window (item statistics,
co-purchase matrix, per-user rows) is prepared once per cutoff and each chunk only
slices it. These tests pin that chunking changes nothing, on a synthetic shop.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from shopflow.ingest.generator import iter_event_tables
from shopflow.recommend.candidates import (
    CandidateConfig,
    generate_candidates,
    prepare_window,
    window_events,
)
from shopflow.recommend.data import EVENT_COLUMNS
from shopflow.settings import GeneratorSettings

LOOKBACK = timedelta(days=30)


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    """A small synthetic shop's events in the shape ``load_events`` returns."""
    table = pa.concat_tables(list(iter_event_tables(GeneratorSettings(events=20_000, days=60))))
    frame = table.to_pandas()[list(EVENT_COLUMNS)]
    for column in ("user_id", "item_id", "category_id", "order_id", "event_type"):
        frame[column] = frame[column].astype("string").astype(object)
    times = pd.to_datetime(frame["event_time"])
    if times.dt.tz is not None:
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    frame["event_time"] = times.astype("datetime64[ns]")
    return frame


def _cutoff(events: pd.DataFrame) -> pd.Timestamp:
    return pd.Timestamp(events["event_time"].max()).floor("D")


def _users(events: pd.DataFrame, cutoff: pd.Timestamp) -> np.ndarray:
    window = window_events(events, cutoff, LOOKBACK)
    seen = sorted(window["user_id"].dropna().unique())
    return np.asarray([*seen, "cold-user-1", "cold-user-2"], dtype=object)


@pytest.mark.parametrize("config", [CandidateConfig(), CandidateConfig(batch_users=7, copurchase=5)])
def test_chunks_of_a_prepared_window_equal_one_call_for_everyone(events: pd.DataFrame,
                                                                 config: CandidateConfig) -> None:
    cutoff = _cutoff(events)
    users = _users(events, cutoff)
    everyone, stats = generate_candidates(events, cutoff=cutoff, lookback=LOOKBACK, users=users,
                                          config=config)
    assert everyone["user_id"].nunique() == len(users)
    assert everyone["src_copurchase"].sum() > len(users)  # every source is exercised
    assert everyone["src_category"].sum() > 0 and everyone["src_recent"].sum() > 0
    window = prepare_window(events, cutoff=cutoff, lookback=LOOKBACK, config=config)
    np.testing.assert_array_equal(window.stats.popularity, stats.popularity)
    chunks = [window.candidates(users[start:start + 97]) for start in range(0, len(users), 97)]
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), everyone)


def test_a_chunk_reads_only_its_users_and_cold_users_get_the_shared_lists(
        events: pd.DataFrame) -> None:
    cutoff = _cutoff(events)
    window = prepare_window(events, cutoff=cutoff, lookback=LOOKBACK)
    assert "co" not in vars(window)  # statistics alone (cold start) never build the matrix
    assert window.candidates([]).empty and "co" not in vars(window)
    known = _users(events, cutoff)[0]
    own = window.candidates([known, "cold-user-1"])
    assert set(own["user_id"]) == {known, "cold-user-1"}
    cold = own[own["user_id"] == "cold-user-1"]
    assert (cold[["src_recent", "src_copurchase", "src_category"]] == 0).all().all()
    assert ((cold["src_popular"] + cold["src_trending"]) > 0).all()
    assert window.co is not None  # built once, for the known user's co-purchase neighbours


def test_each_item_keeps_only_its_best_co_purchase_neighbours(events: pd.DataFrame) -> None:
    cutoff = _cutoff(events)
    wide = prepare_window(events, cutoff=cutoff, lookback=LOOKBACK,
                          config=CandidateConfig(neighbours=10**9)).co
    narrow = prepare_window(events, cutoff=cutoff, lookback=LOOKBACK,
                            config=CandidateConfig(neighbours=3)).co
    assert wide.nnz > narrow.nnz > 0
    assert np.diff(wide.indptr).max() > 3 >= np.diff(narrow.indptr).max()
    for item in range(wide.shape[0]):
        row = wide.getrow(item)
        # best score first, ties to the lower item code (item codes follow sorted ids)
        best = sorted(zip(-row.data, row.indices, strict=True))[:3]
        kept = narrow.getrow(item)
        assert sorted(kept.indices.tolist()) == sorted(int(c) for _, c in best)
        np.testing.assert_array_equal(kept.toarray(), row.toarray() * (kept.toarray() > 0))


def test_co_purchase_lists_are_the_top_of_the_users_seeded_neighbour_scores(
        events: pd.DataFrame) -> None:
    config = CandidateConfig(copurchase=5, neighbours=4, batch_users=11)
    cutoff = _cutoff(events)
    window = prepare_window(events, cutoff=cutoff, lookback=LOOKBACK, config=config)
    users = _users(events, cutoff)[:60]
    frame = window.candidates(users)
    rows = window_events(events, cutoff, LOOKBACK)
    weights = rows["event_type"].map({"view": 1.0, "cart": 2.0, "purchase": 3.0, "return": 0.0})
    seeds = (rows.assign(w=weights).groupby(["user_id", "item_id"])["w"].sum())
    assert (rows.groupby("user_id")["item_id"].nunique() <= config.recent).all()  # all seed
    co = window.co.toarray()
    codes = {item: code for code, item in enumerate(window.stats.item_ids)}
    checked = 0
    for user in users:
        got = frame[(frame["user_id"] == user) & (frame["src_copurchase"] > 0)]
        vector = np.zeros(co.shape[0], dtype=np.float32)
        if user in seeds.index.get_level_values(0):
            for item, weight in seeds.loc[user].items():
                vector[codes[item]] = weight
        scores = vector @ co
        best = sorted((-s, c) for c, s in enumerate(scores) if s > 0)[:config.copurchase]
        expected = {window.stats.item_ids[c]: -s for s, c in best}
        assert dict(zip(got["item_id"], got["cand_copurchase_score"], strict=True)) == (
            pytest.approx(expected, rel=1e-5))
        checked += bool(expected)
    assert checked > 10


def test_a_window_with_categorical_ids_gives_the_same_candidates(events: pd.DataFrame) -> None:
    """Windows read from the warehouse carry ids as categoricals (``data._narrow``):
    candidates, statistics and the co-purchase matrix must not notice."""
    from shopflow.recommend.data import _narrow

    cutoff = _cutoff(events)
    users = _users(events, cutoff)
    plain = window_events(events, cutoff, LOOKBACK)
    # categories in first-seen order, as a dictionary-encoded Arrow column arrives
    narrow = plain.copy()
    for column in ("user_id", "item_id", "category_id", "order_id", "event_type"):
        narrow[column] = pd.Categorical(narrow[column],
                                        categories=pd.unique(narrow[column].dropna()))
    narrow = _narrow(narrow)
    assert narrow["item_id"].cat.categories.is_monotonic_increasing
    expected, stats = generate_candidates(plain, cutoff=cutoff, lookback=LOOKBACK, users=users)
    got, got_stats = generate_candidates(narrow, cutoff=cutoff, lookback=LOOKBACK, users=users)
    pd.testing.assert_frame_equal(got, expected)
    np.testing.assert_array_equal(got_stats.item_ids, stats.item_ids)
    np.testing.assert_array_equal(got_stats.trend, stats.trend)
    np.testing.assert_array_equal(got_stats.category, stats.category)
