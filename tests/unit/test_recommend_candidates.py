"""Candidate generation: each source does its job, and nothing after the cutoff counts."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from shopflow.recommend.candidates import (
    CandidateConfig,
    candidate_recall,
    generate_candidates,
)

CUTOFF = pd.Timestamp("2024-01-10")
LOOKBACK = timedelta(days=7)


def _events(rows: list[tuple[str, str, str, str, str, str | None]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "category_id", "event_type",
                                        "event_time", "order_id"])
    frame["event_time"] = pd.to_datetime(frame["event_time"], format="ISO8601")
    return frame


@pytest.fixture
def events() -> pd.DataFrame:
    return _events([
        # u1 looks at shoes (c1), then buys a1 with a2 in one order (a co-purchase pair)
        ("u1", "s1", "c1", "view", "2024-01-08 10:00", None),
        ("u1", "s2", "c1", "cart", "2024-01-09 10:00", None),
        # other baskets: a1 bought with a2 twice, a1 with a3 once
        ("u2", "a1", "c2", "purchase", "2024-01-05 10:00", "o1"),
        ("u2", "a2", "c2", "purchase", "2024-01-05 10:00", "o1"),
        ("u3", "a1", "c2", "purchase", "2024-01-06 10:00", "o2"),
        ("u3", "a2", "c2", "purchase", "2024-01-06 10:00", "o2"),
        ("u3", "a3", "c2", "purchase", "2024-01-06 10:00", "o3"),
        ("u4", "a1", "c2", "purchase", "2024-01-06 11:00", "o4"),
        ("u4", "a3", "c2", "purchase", "2024-01-06 11:00", "o4"),
        # u5 bought a1 only: its neighbours are a2/a3
        ("u5", "a1", "c2", "purchase", "2024-01-07 10:00", "o5"),
        # popular in c1: s3 bought three times
        ("u2", "s3", "c1", "purchase", "2024-01-04 10:00", "o6"),
        ("u3", "s3", "c1", "purchase", "2024-01-04 11:00", "o7"),
        ("u4", "s3", "c1", "purchase", "2024-01-04 12:00", "o8"),
        # too old for the lookback window, and after the cutoff: both must be invisible
        ("u1", "old", "c1", "purchase", "2024-01-01 10:00", "o9"),
        ("u1", "future", "c1", "purchase", "2024-01-10 00:00:01", "o10"),
        ("u9", "future", "c1", "purchase", "2024-01-11 00:00:00", "o11"),
        ("u9", "future", "c1", "purchase", "2024-01-11 00:00:01", "o12"),
    ])


def _pairs(frame: pd.DataFrame, source: str | None = None) -> set[tuple[str, str]]:
    if source is not None:
        frame = frame[frame[f"src_{source}"] > 0]
    return set(zip(frame["user_id"], frame["item_id"], strict=True))


def test_sources_find_recent_copurchase_category_and_popular_items(events: pd.DataFrame) -> None:
    frame, stats = generate_candidates(events, cutoff=CUTOFF, lookback=LOOKBACK,
                                       users=["u1", "u5"])
    assert {("u1", "s1"), ("u1", "s2")} <= _pairs(frame, "recent")
    assert {("u5", "a2"), ("u5", "a3")} <= _pairs(frame, "copurchase")
    assert ("u1", "s3") in _pairs(frame, "category")  # best seller of u1's favourite category
    top_items, _ = stats.popular_items(1)
    assert list(top_items) == ["a1"]  # four purchases beat s3's three
    assert ("u1", "a1") in _pairs(frame, "popular")
    assert frame.duplicated(["user_id", "item_id"]).sum() == 0
    a2 = frame[(frame["user_id"] == "u5") & (frame["item_id"] == "a2")].iloc[0]
    a3 = frame[(frame["user_id"] == "u5") & (frame["item_id"] == "a3")].iloc[0]
    assert a2["cand_copurchase_score"] > 0 and a3["cand_copurchase_score"] > 0


def test_nothing_after_the_cutoff_or_before_the_lookback_is_seen(events: pd.DataFrame) -> None:
    frame, stats = generate_candidates(events, cutoff=CUTOFF, lookback=LOOKBACK,
                                       users=["u1", "u9"])
    assert "future" not in set(frame["item_id"])
    assert "old" not in set(frame["item_id"])
    assert {"future", "old"}.isdisjoint(set(stats.item_ids))
    # adding more future purchases changes nothing at this cutoff
    more = pd.concat([events, _events([("u1", "a3", "c2", "purchase", "2024-01-12", "o99")] * 5)])
    again, _ = generate_candidates(more, cutoff=CUTOFF, lookback=LOOKBACK, users=["u1", "u9"])
    pd.testing.assert_frame_equal(frame, again)


def test_cold_users_get_only_popular_and_trending(events: pd.DataFrame) -> None:
    frame, _ = generate_candidates(events, cutoff=CUTOFF, lookback=LOOKBACK, users=["u9"],
                                   config=CandidateConfig(popular=2, trending=0))
    assert set(frame["item_id"]) == {"a1", "s3"}
    assert (frame["src_recent"] == 0).all() and (frame["src_copurchase"] == 0).all()


def test_candidate_recall_counts_bought_items_found(events: pd.DataFrame) -> None:
    frame, _ = generate_candidates(events, cutoff=CUTOFF, lookback=LOOKBACK, users=["u1", "u5"])
    labels = pd.DataFrame({"user_id": ["u1", "u1", "u5"], "item_id": ["s1", "nowhere", "a2"],
                           "cutoff_time": CUTOFF})
    recall = candidate_recall(frame, labels)
    assert recall["recall_items"] == pytest.approx(2 / 3)
    assert recall["recall_users"] == pytest.approx((0.5 + 1.0) / 2)
    assert recall["buyers"] == 2
    assert recall["recall_items:recent"] == pytest.approx(1 / 3)  # s1
    assert recall["recall_items:copurchase"] == pytest.approx(1 / 3)  # a2


def test_events_without_an_order_form_one_basket_per_user_and_day() -> None:
    events = _events([
        ("u6", "b1", "c3", "view", "2024-01-08 10:00", None),
        ("u6", "b2", "c3", "view", "2024-01-08 18:00", None),  # same day: a basket with b1
        ("u6", "b3", "c3", "view", "2024-01-09 10:00", None),  # next day: not with b1
        ("u7", "b1", "c3", "view", "2024-01-09 12:00", None),
    ])
    frame, _ = generate_candidates(events, cutoff=CUTOFF, lookback=LOOKBACK, users=["u7"],
                                   config=CandidateConfig(popular=0, trending=0, category=0))
    assert _pairs(frame, "copurchase") == {("u7", "b2")}


def _union_by_pandas(parts: list[tuple[np.ndarray, np.ndarray, str, np.ndarray]]) -> pd.DataFrame:
    """The reference: a flag and score column per part, then a pandas group-by max."""
    from shopflow.recommend.candidates import SOURCES

    frames = []
    for users, items, source, scores in parts:
        frame = pd.DataFrame({"u": users.astype(np.int64), "i": items.astype(np.int64)})
        for s in SOURCES:
            frame[f"src_{s}"] = 1.0 if s == source else 0.0
        frame["cand_copurchase_score"] = scores if source == "copurchase" else 0.0
        frame["cand_category_share"] = scores if source == "category" else 0.0
        frames.append(frame)
    stacked = pd.concat(frames, ignore_index=True)
    return stacked.groupby(["u", "i"], sort=True, as_index=False).max()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_union_of_sources_equals_a_pandas_group_by_max(seed: int) -> None:
    from shopflow.recommend.candidates import SOURCES, _union

    rng = np.random.default_rng(seed)
    parts = []
    for source in SOURCES:
        n = int(rng.integers(0, 400))
        scores = rng.random(n)
        scores[rng.random(n) < 0.1] = np.nan
        parts.append((rng.integers(0, 30, n), rng.integers(0, 50, n), source, scores))
    pd.testing.assert_frame_equal(_union(parts), _union_by_pandas(parts))
