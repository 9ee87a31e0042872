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
    _generate_candidates_legacy,
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
def test_prepared_window_matches_the_one_pass_generator(events: pd.DataFrame,
                                                        config: CandidateConfig) -> None:
    cutoff = _cutoff(events)
    users = _users(events, cutoff)
    expected, expected_stats = _generate_candidates_legacy(events, cutoff=cutoff,
                                                           lookback=LOOKBACK, users=users,
                                                           config=config)
    got, stats = generate_candidates(events, cutoff=cutoff, lookback=LOOKBACK, users=users,
                                     config=config)
    assert len(expected) > len(users)  # a real workload: several candidates per user
    pd.testing.assert_frame_equal(got, expected)
    np.testing.assert_array_equal(stats.popularity, expected_stats.popularity)


def test_chunks_of_a_prepared_window_match_one_pass_per_chunk(events: pd.DataFrame) -> None:
    cutoff = _cutoff(events)
    users = _users(events, cutoff)
    window = prepare_window(events, cutoff=cutoff, lookback=LOOKBACK)
    for start in range(0, len(users), 97):
        chunk = users[start:start + 97]
        expected, _ = _generate_candidates_legacy(events, cutoff=cutoff, lookback=LOOKBACK,
                                                  users=chunk)
        pd.testing.assert_frame_equal(window.candidates(chunk), expected)
