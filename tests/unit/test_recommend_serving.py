"""Recommender behaviour: known users, cold start, exclude_purchased, bad input."""

from __future__ import annotations

import pandas as pd
import pytest

from shopflow.recommend.serving import Recommender
from shopflow.recommend.snapshot import ServingSnapshot


@pytest.fixture
def recommender() -> Recommender:
    snapshot = ServingSnapshot(
        cutoff=pd.Timestamp("2024-04-01"),
        ranked=pd.DataFrame({
            "user_id": ["u1", "u1", "u1", "u2"],
            "item_id": ["a", "b", "c", "x"],
            "score": [3.0, 2.0, 1.0, 0.5],
            "rank": [1, 2, 3, 1],
        }),
        popular=pd.DataFrame({"item_id": ["p1", "a", "p2", "p3"], "score": [9.0, 8.0, 7.0, 6.0]}),
        purchased=pd.DataFrame({"user_id": ["u1", "u1"], "item_id": ["a", "p1"]}),
    )
    return Recommender(snapshot, model_version="v1", family="lightgbm")


def test_known_user_gets_their_ranked_list(recommender: Recommender) -> None:
    result = recommender.recommend("u1", 2)
    assert [i.item_id for i in result.items] == ["a", "b"]
    assert [i.rank for i in result.items] == [1, 2]
    assert not result.cold_start and result.model_version == "v1" and result.family == "lightgbm"
    assert result.to_dict()["items"][0] == {"item_id": "a", "score": 3.0, "rank": 1}


def test_cold_start_gets_popular_items_flagged(recommender: Recommender) -> None:
    result = recommender.recommend("someone-new", 3)
    assert result.cold_start and result.family == "popularity"
    assert [i.item_id for i in result.items] == ["p1", "a", "p2"]
    assert not recommender.known("someone-new") and recommender.known("u1")


def test_exclude_purchased_and_fill_from_popular(recommender: Recommender) -> None:
    result = recommender.recommend("u1", 4, exclude_purchased=True)
    items = [i.item_id for i in result.items]
    assert items == ["b", "c", "p2", "p3"]  # a and p1 were bought; the short list is filled
    scores = [i.score for i in result.items]
    assert scores == sorted(scores, reverse=True)
    assert [i.item_id for i in recommender.recommend("u1", 4).items][:3] == ["a", "b", "c"]


@pytest.mark.parametrize("k", [0, 101, 2.5, True, "3"])
def test_bad_k_is_a_clear_error(recommender: Recommender, k: object) -> None:
    with pytest.raises(ValueError, match="k must be"):
        recommender.recommend("u1", k)  # type: ignore[arg-type]


def test_empty_user_is_a_clear_error(recommender: Recommender) -> None:
    with pytest.raises(ValueError, match="user_id"):
        recommender.recommend("  ")


def test_load_with_nothing_stored_and_no_warehouse_is_a_clear_error(settings) -> None:
    from shopflow.recommend.serving import RecommenderUnavailable

    with pytest.raises(RecommenderUnavailable, match="no published marts and no warehouse"):
        Recommender.load(settings)
    with pytest.raises(RecommenderUnavailable, match="model store"):
        Recommender.load(settings, fallback=False)
    assert not settings.warehouse_path.exists()  # nothing created on the way
