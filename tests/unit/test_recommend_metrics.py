"""Ranking metrics, the leaderboard and gate 2 for recommenders."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from shopflow.recommend.gate import decide_recommender, recommender_ledger
from shopflow.recommend.metrics import evaluate_lists, leaderboard, leaderboard_html, user_metrics


def test_perfect_and_empty_lists() -> None:
    perfect = user_metrics(["a", "b", "x"], {"a", "b"}, 3)
    assert perfect == {"recall": 1.0, "ndcg": 1.0, "ap": 1.0, "hit": 1.0}
    miss = user_metrics(["x", "y"], {"a"}, 2)
    assert miss == {"recall": 0.0, "ndcg": 0.0, "ap": 0.0, "hit": 0.0}
    assert user_metrics([], {"a"}, 10)["ndcg"] == 0.0
    with pytest.raises(ValueError, match="relevant"):
        user_metrics(["a"], set(), 1)


def test_position_matters_as_defined() -> None:
    second = user_metrics(["x", "a"], {"a"}, 2)
    assert second["ndcg"] == pytest.approx(1 / math.log2(3))
    assert second["ap"] == pytest.approx(0.5)
    # recall divides by everything bought, even beyond k
    assert user_metrics(["a", "x"], {"a", "b", "c"}, 2)["recall"] == pytest.approx(1 / 3)


def test_evaluate_lists_slices_and_coverage() -> None:
    cutoff = pd.Timestamp("2024-01-10")
    lists = pd.DataFrame({
        "user_id": ["u1", "u1", "u2", "u2"], "cutoff_time": cutoff,
        "item_id": ["a", "b", "c", "a"], "rank": [1, 2, 1, 2],
    })
    labels = pd.DataFrame({"user_id": ["u1", "u2", "u3"], "cutoff_time": cutoff,
                           "item_id": ["a", "z", "a"]})
    slices = pd.DataFrame({"user_id": ["u1", "u2", "u3"], "cutoff_time": cutoff,
                           "slice": ["returning", "new", "new"]})
    out = evaluate_lists(lists, labels, slices=slices, catalogue=10, ks=(2,))
    assert out["users"] == 3  # u3 has no list: counted as a miss, not dropped
    assert out["recall@2"] == pytest.approx(1 / 3)
    assert out["recall@2:returning"] == 1.0 and out["recall@2:new"] == 0.0
    assert out["hit_rate@2"] == pytest.approx(1 / 3)
    assert out["coverage@2"] == pytest.approx(3 / 10)
    assert out["users:new"] == 2


def test_leaderboard_sorted_and_html() -> None:
    board = leaderboard({"popularity": {"ndcg@10": 0.1, "recall@10": 0.2, "users": 5},
                         "lightgbm": {"ndcg@10": 0.3, "recall@10": 0.4, "users": 5}})
    assert list(board["model"]) == ["lightgbm", "popularity"]
    page = leaderboard_html(board, notes={"winner": "lightgbm <b>"})
    assert page.startswith("<section") and "<td>lightgbm</td>" in page
    assert "&lt;b&gt;" in page  # escaped


def test_gate_needs_margin_and_guards() -> None:
    base = {"ndcg@10": 0.10, "recall@10": 0.20}
    assert decide_recommender({"ndcg@10": 0.15, "recall@10": 0.25}, champion=None,
                              baseline=base).promote
    tiny = decide_recommender({"ndcg@10": 0.101, "recall@10": 0.25}, champion=None, baseline=base)
    assert not tiny.promote and "baseline" in tiny.reason
    champion = {"ndcg@10": 0.12, "recall@10": 0.30}
    guarded = decide_recommender({"ndcg@10": 0.15, "recall@10": 0.25}, champion=champion, baseline=base)
    assert not guarded.promote and "recall@10" in guarded.reason
    assert guarded.reference_name == "champion"


def test_recommender_ledger_is_separate_from_the_propensity_ledger(settings) -> None:
    from shopflow.ledger import Ledger

    ledger = recommender_ledger(settings)
    try:
        ledger.record_candidate(version="r1", family="lightgbm", metrics={"ndcg@10": 0.2})
        ledger.promote("r1", actor="test", reason="beats baseline")
        assert ledger.production().version == "r1"
    finally:
        ledger.close()
    main = Ledger(settings.ledger_url)
    try:
        assert main.production() is None
        assert main.candidates() == []
    finally:
        main.close()
