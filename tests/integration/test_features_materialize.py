"""Bulk materialization into real SQLite and Redis online stores, read back by stock Feast."""

from __future__ import annotations

import logging
import math
import sqlite3
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from shopflow.features import apply, export_marts, get_store, get_watermark, materialize
from shopflow.features.schema import ITEM_TABLE, USER_TABLE
from shopflow.features.synthetic import feature_row, random_feature_frame, write_mart
from shopflow.settings import Settings, load_settings

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

FIRST = USER_TABLE.feature_names[0]
VIEW = USER_TABLE.view_name


def _redis_cleanup(redis_url: str, project: str) -> None:
    import redis

    host, port = redis_url.split(":")
    client = redis.Redis(host=host, port=int(port))
    keys = list(client.scan_iter(match=b"*" + project.encode(), count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start:start + 1000])
    client.close()


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def store_settings(request: pytest.FixtureRequest, shopflow_home) -> Iterator[Settings]:
    """Settings for a fresh Feast project on SQLite or on the real Redis."""
    project = f"t{uuid.uuid4().hex[:10]}"
    overrides: dict = {"project": project, "online_store": request.param}
    redis_url = None
    if request.param == "redis":
        redis_url = request.getfixturevalue("redis_url")
        overrides["redis_url"] = redis_url
    settings = load_settings(features=overrides)
    settings.ensure_dirs()
    yield settings
    if redis_url:
        _redis_cleanup(redis_url, project)


def _write_marts(settings: Settings, user_rows: list[dict]) -> None:
    write_mart(settings, USER_TABLE, user_rows)
    write_mart(settings, ITEM_TABLE, [feature_row(ITEM_TABLE, "i1", "2024-01-07", 7.0)])


def _online(settings: Settings, ids: list[str], store=None) -> dict[str, list]:
    store = store or get_store(settings)
    return store.get_online_features(
        features=store.get_feature_service("propensity_v2"),
        entity_rows=[{"user_id": i} for i in ids],
    ).to_dict()


def _dump(settings: Settings) -> object:
    """Everything the online store holds for this project, for before/after comparisons."""
    if settings.features.online_store == "sqlite":
        conn = sqlite3.connect(settings.feast_dir / "online.db")
        rows = conn.execute(
            f'SELECT entity_key, feature_name, value, value_text, event_ts, created_ts FROM "{settings.features.project}_{VIEW}" ORDER BY 1, 2'
        ).fetchall()
        conn.close()
        return rows
    import redis

    host, port = settings.features.redis_url.split(":")
    client = redis.Redis(host=host, port=int(port))
    keys = sorted(client.scan_iter(match=b"*" + settings.features.project.encode(), count=1000))
    dump = [(k, sorted(client.hgetall(k).items())) for k in keys]
    client.close()
    return dump


def test_latest_row_per_user_is_served(store_settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    _write_marts(
        store_settings,
        [
            feature_row(USER_TABLE, "u1", "2024-01-07", 1.0),
            feature_row(USER_TABLE, "u1", "2024-01-14", 2.0, overrides={"tenure_days": None}),
            feature_row(USER_TABLE, "u2", "2024-01-07", 10.0),
            feature_row(USER_TABLE, "u2", "2024-01-07", 11.0, created_at="2024-01-09"),  # correction
        ],
    )
    apply(store_settings)
    with caplog.at_level(logging.INFO, logger="shopflow.features"):
        result = materialize(store_settings)
    user = result.by_view(VIEW)
    assert (user.entities, user.written, user.skipped_newer) == (2, 2, 0)
    assert user.watermark == datetime(2024, 1, 14, tzinfo=UTC)
    assert any("entities/s" in r.getMessage() for r in caplog.records)

    online = _online(store_settings, ["u1", "u2", "nobody"])
    assert online[FIRST] == [2.0, 11.0, None]
    # feature i of a feature_row is base + i/100
    tenure = USER_TABLE.feature_names.index("tenure_days") / 100
    returning = USER_TABLE.feature_names.index("is_returning_buyer") / 100
    assert online["tenure_days"] == [None, pytest.approx(11 + tenure), None]
    assert online["is_returning_buyer"] == [pytest.approx(2 + returning),
                                            pytest.approx(11 + returning), None]


def test_same_online_state_as_feast_stock_materialize(store_settings: Settings) -> None:
    """Our bulk writer and Feast's own materialize leave identical online stores."""
    frame = random_feature_frame(USER_TABLE, 300, entities=120, cutoffs=4, null_rate=0.05, seed=3)
    _write_marts(store_settings, frame.to_dict("records"))
    apply(store_settings)
    ours = materialize(store_settings)
    assert ours.by_view(VIEW).entities == frame["user_id"].nunique()
    ours_dump = _dump(store_settings)

    stock_settings = load_settings(
        home=store_settings.home_dir / "stock",
        features={**store_settings.features.model_dump(), "project": store_settings.features.project + "s"},
    )
    stock_settings.ensure_dirs()
    try:
        _write_marts(stock_settings, frame.to_dict("records"))
        apply(stock_settings)
        stock_store = get_store(stock_settings)
        # the views whose marts this test wrote (user_features_v1 is not published here)
        stock_store.materialize(datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC),
                                feature_views=[USER_TABLE.view_name, ITEM_TABLE.view_name])
        ids = sorted(frame["user_id"].unique())
        assert _online(store_settings, ids) == _online(stock_settings, ids, stock_store)
        stock_dump = _dump(stock_settings)
    finally:
        if store_settings.features.online_store == "redis":
            _redis_cleanup(store_settings.features.redis_url, stock_settings.features.project)
    if store_settings.features.online_store == "redis":
        # Same hashes, keys differ only by the project suffix.
        suffix = len(stock_settings.features.project)
        assert [(k[:-suffix], v) for k, v in stock_dump] == [
            (k[: -(suffix - 1)], v) for k, v in ours_dump
        ]
    else:
        assert stock_dump == ours_dump


def test_rerunning_a_window_changes_nothing(store_settings: Settings) -> None:
    _write_marts(store_settings, random_feature_frame(USER_TABLE, 200, entities=80, cutoffs=3, seed=5).to_dict("records"))
    apply(store_settings)
    end = datetime(2025, 1, 1, tzinfo=UTC)
    first = materialize(store_settings, end=end).by_view(VIEW)
    before = _dump(store_settings)
    second = materialize(store_settings, end=end).by_view(VIEW)
    assert _dump(store_settings) == before
    assert second.watermark == first.watermark
    assert second.previous_watermark == first.watermark
    # The second run starts from the watermark minus the overlap.
    assert second.start == first.watermark - store_settings.features.materialize_overlap
    again = materialize(store_settings, start=datetime(2000, 1, 1, tzinfo=UTC), end=end)
    assert _dump(store_settings) == before
    assert again.by_view(VIEW).entities == 80


def test_incremental_window_picks_up_late_rows_within_the_overlap(store_settings: Settings) -> None:
    rows = [
        feature_row(USER_TABLE, "u1", "2024-01-07", 1.0),
        feature_row(USER_TABLE, "u1", "2024-01-14", 2.0),
        feature_row(USER_TABLE, "u2", "2024-01-07", 10.0),
    ]
    _write_marts(store_settings, rows)
    apply(store_settings)
    materialize(store_settings)
    assert get_watermark(get_store(store_settings), VIEW) == datetime(2024, 1, 14, tzinfo=UTC)

    rows += [
        feature_row(USER_TABLE, "u1", "2024-01-21", 3.0),  # the next cutoff
        feature_row(USER_TABLE, "u2", "2024-01-13", 20.0),  # late, inside the 2-day overlap
        feature_row(USER_TABLE, "u3", "2024-01-05", 30.0),  # late, before the window
    ]
    _write_marts(store_settings, rows)
    export_marts(store_settings)
    second = materialize(store_settings).by_view(VIEW)
    assert second.start == datetime(2024, 1, 12, tzinfo=UTC)
    assert second.entities == 2
    assert _online(store_settings, ["u1", "u2", "u3"])[FIRST] == [3.0, 20.0, None]
    assert second.watermark == datetime(2024, 1, 21, tzinfo=UTC)

    # An explicit backfill window reaches the older row without moving the watermark back.
    backfill = materialize(store_settings, start=datetime(2024, 1, 1, tzinfo=UTC)).by_view(VIEW)
    assert _online(store_settings, ["u1", "u2", "u3"])[FIRST] == [3.0, 20.0, 30.0]
    assert backfill.watermark == datetime(2024, 1, 21, tzinfo=UTC)


def test_an_older_window_never_overwrites_newer_values(store_settings: Settings) -> None:
    _write_marts(
        store_settings,
        [
            feature_row(USER_TABLE, "u1", "2024-01-07", 1.0),
            feature_row(USER_TABLE, "u1", "2024-01-14", 2.0),
            feature_row(USER_TABLE, "u2", "2024-01-07", 10.0),
        ],
    )
    apply(store_settings)
    materialize(store_settings)
    old = materialize(store_settings, start=datetime(2024, 1, 1, tzinfo=UTC), end=datetime(2024, 1, 8, tzinfo=UTC))
    view = old.by_view(VIEW)
    assert view.entities == 2
    assert _online(store_settings, ["u1", "u2"])[FIRST] == [2.0, 10.0]
    assert view.watermark == datetime(2024, 1, 14, tzinfo=UTC)
    if store_settings.features.online_store == "redis":
        assert (view.written, view.skipped_newer) == (1, 1)


def test_materialize_before_apply_says_what_to_do(settings: Settings) -> None:
    from shopflow.features.store import FeatureStoreError

    with pytest.raises(FeatureStoreError, match="shopflow features apply"):
        materialize(settings)


def test_empty_window_keeps_the_watermark(store_settings: Settings) -> None:
    _write_marts(store_settings, [feature_row(USER_TABLE, "u1", "2024-01-07", 1.0)])
    apply(store_settings)
    materialize(store_settings)
    nothing = materialize(store_settings, start=datetime(2030, 1, 1, tzinfo=UTC), end=datetime(2030, 2, 1, tzinfo=UTC))
    view = nothing.by_view(VIEW)
    assert view.entities == 0 and view.written == 0
    assert view.watermark == datetime(2024, 1, 7, tzinfo=UTC)
    assert not math.isnan(_online(store_settings, ["u1"])[FIRST][0])


def test_generic_writer_fallback_reads_back_the_same(store_settings: Settings) -> None:
    """Stores without a bulk writer go through Feast's online_write_batch: same answers."""
    from shopflow.features import online_write
    from shopflow.features.materialization import read_latest_rows

    frame = random_feature_frame(USER_TABLE, 40, entities=40, cutoffs=1, null_rate=0.1, seed=9)
    _write_marts(store_settings, frame.to_dict("records"))
    apply(store_settings)
    store = get_store(store_settings)
    view = store.get_feature_view(VIEW)
    _, batches = read_latest_rows(store_settings, USER_TABLE, start=None, end=datetime.now(UTC))
    for rows in batches:
        stats = online_write.write_generic(store, view, rows)
        assert stats.written == len(rows)
    ids = sorted(frame["user_id"])
    via_generic = _online(store_settings, ids, store)
    materialize(store_settings)
    assert _online(store_settings, ids, store) == via_generic


def _indexes(settings: Settings) -> list[tuple[str, str]]:
    """The explicit indexes of the SQLite online store, with the SQL that made them."""
    conn = sqlite3.connect(settings.feast_dir / "online.db")
    rows = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name"
    ).fetchall()
    conn.close()
    return rows


def test_a_first_load_leaves_feasts_indexes_as_apply_made_them(settings: Settings) -> None:
    """The SQLite first load builds the entity_key index last, also after a failed load."""
    from shopflow.features.online_write import sqlite_indexes_deferred

    frame = random_feature_frame(USER_TABLE, 200, entities=80, cutoffs=3, seed=9)
    _write_marts(settings, frame.to_dict("records"))
    apply(settings)
    made_by_apply = _indexes(settings)
    assert f"{settings.features.project}_{VIEW}_ek" in {name for name, _ in made_by_apply}
    store = get_store(settings)
    with pytest.raises(RuntimeError, match="load failed"), sqlite_indexes_deferred(
        store, store.get_feature_view(VIEW)
    ):
        assert _indexes(settings) != made_by_apply  # dropped while the empty table loads
        raise RuntimeError("load failed")
    assert _indexes(settings) == made_by_apply
    materialize(settings)
    assert _indexes(settings) == made_by_apply
    assert len(_dump(settings)) == frame["user_id"].nunique() * len(USER_TABLE.feature_names)
