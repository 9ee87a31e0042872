"""The service's recommender with nothing in production: popularity from the published
marts (never the warehouse), refreshed when new marts are published, else a clear 503."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from shopflow.serving.recommender import NoRecommender, RecommenderRuntime

if TYPE_CHECKING:
    from shopflow.settings import Settings


def _publish_items(settings: Settings, purchases: dict[str, int], *, stamp: int) -> None:
    """A published ``item_features`` with an old cutoff (to be ignored) and a newest one."""
    from shopflow.transform import marts_dir

    rows = []
    for cutoff, scale in (("2026-01-01", -1), ("2026-01-08", 1)):
        for item, bought in purchases.items():
            rows.append({"item_id": item, "cutoff_time": pd.Timestamp(cutoff),
                         "item_views_lookback": 10.0, "item_carts_lookback": 1.0,
                         "item_purchases_lookback": float(bought * scale)})
    path = marts_dir(settings) / "item_features.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(path, index=False)
    os.utime(path, (stamp, stamp))  # a new publication has a new mtime


def test_nothing_published_is_a_clear_unavailable(settings: Settings) -> None:
    runtime = RecommenderRuntime(settings)
    try:
        runtime.poll_once()
        with pytest.raises(NoRecommender, match="no recommender in production.*pipeline"):
            runtime.recommend("u1")
        assert runtime.metadata()["model_version"] is None
        assert not settings.warehouse_path.exists()  # the service never creates/opens it
    finally:
        runtime.close()


def test_popularity_from_the_published_marts_and_refreshed_on_publish(
        settings: Settings) -> None:
    _publish_items(settings, {"a": 5, "b": 9, "c": 1}, stamp=1_000_000)
    runtime = RecommenderRuntime(settings)
    try:
        runtime.poll_once()
        result = runtime.recommend("anyone", 3)
        assert result.cold_start and result.model_version == "popularity"
        assert [i.item_id for i in result.items] == ["b", "a", "c"]  # newest cutoff only
        assert [i.rank for i in result.items] == [1, 2, 3]
        assert pd.Timestamp(result.snapshot_time) == pd.Timestamp("2026-01-08", tz="UTC")
        assert runtime.metadata()["fallback"] is True
        _publish_items(settings, {"a": 5, "b": 1, "c": 9}, stamp=2_000_000)
        runtime.poll_once()
        assert [i.item_id for i in runtime.recommend("anyone", 2).items] == ["c", "a"]
        with pytest.raises(ValueError, match="k must be"):
            runtime.recommend("anyone", 0)
    finally:
        runtime.close()


def test_a_production_recommender_replaces_the_fallback(settings: Settings) -> None:
    from shopflow.serving.sandbox import build_recommender_sandbox

    _publish_items(settings, {"a": 5}, stamp=1_000_000)
    runtime = RecommenderRuntime(settings)
    try:
        runtime.poll_once()
        assert runtime.version == "popularity"
        sandbox = build_recommender_sandbox(settings, ["u1", "u2"])
        runtime.poll_once()
        assert runtime.version == sandbox.versions[-1]
        result = runtime.recommend("u1", 5)
        assert not result.cold_start and result.family == "sandbox"
    finally:
        runtime.close()
