"""The Feast objects follow the settings and the repo's naming and documentation rules."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from shopflow.features.definitions import build_definitions
from shopflow.features.schema import ITEM_TABLE, USER_TABLE, user_table
from shopflow.features.training import EntityFrameError, build_training_set
from shopflow.settings import Settings, load_settings


def test_names_ttl_and_sources_follow_settings(shopflow_home) -> None:
    settings = load_settings(task={"lookback": "30d"})
    defs = build_definitions(settings)
    assert defs.user.join_key == "user_id" and defs.item.join_key == "item_id"
    assert defs.user_features_fv.name == "user_features_fv"
    assert defs.item_features_fv.name == "item_features_fv"
    assert defs.user_features_fv.ttl == timedelta(days=30) == defs.item_features_fv.ttl
    assert defs.user_features_source.name == "user_features_source"
    assert defs.user_features_source.path == str(settings.feast_dir / "data" / "user_features.parquet")
    assert defs.user_features_source.timestamp_field == "cutoff_time"
    assert defs.user_features_source.created_timestamp_column == "created_at"
    # the task's catalogue: a 30d lookback caps the windows at 30d (7d, 30d; no 90d)
    assert [f.name for f in defs.user_features_fv.features] == user_table(settings).feature_names
    assert "events_30d" in user_table(settings).feature_names
    assert "events_90d" not in user_table(settings).feature_names
    assert [f.name for f in defs.item_features_fv.features] == ITEM_TABLE.feature_names


def test_every_view_and_field_is_documented_and_tagged(settings: Settings) -> None:
    defs = build_definitions(settings)
    for view in (defs.user_features_fv, defs.item_features_fv):
        assert view.description and view.tags
        for field in view.features:
            assert field.description, field.name
            assert field.tags, field.name
    for service in (defs.propensity_v2, defs.item_ranking_v1):
        assert service.description and service.tags
        assert service.name.rsplit("_v", 1)[1].isdigit()


def test_propensity_service_is_every_user_feature(settings: Settings) -> None:
    defs = build_definitions(settings)
    (projection,) = defs.propensity_v2.feature_view_projections
    assert projection.name == "user_features_fv"
    assert [f.name for f in projection.features] == USER_TABLE.feature_names


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"user_id": ["u1"]}), "lacks column"),
        (pd.DataFrame({"user_id": [None], "event_timestamp": ["2024-01-01"]}), "null user_id"),
        (
            pd.DataFrame({"user_id": ["u1", "u1"], "event_timestamp": ["2024-01-01", "2024-01-01"], "label": [0, 1]}),
            "sharing a \\(user_id, event_timestamp\\)",
        ),
    ],
)
def test_bad_entity_frames_fail_before_any_join(settings: Settings, frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(EntityFrameError, match=message):
        build_training_set(settings, frame)
