"""Online reads for batches of ids, on SQLite and the real Redis, and Feast's own server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import httpx
import pytest

from shopflow.features import (
    apply,
    get_online_item_features,
    get_online_user_features,
    get_store,
    materialize,
)
from shopflow.features.schema import ITEM_TABLE, USER_TABLE
from shopflow.features.store import clear_shared_stores
from shopflow.features.synthetic import feature_row, write_mart
from shopflow.settings import Settings, load_settings

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

FIRST = USER_TABLE.feature_names[0]


def _fill(settings: Settings) -> None:
    write_mart(
        settings,
        USER_TABLE,
        [
            feature_row(USER_TABLE, "u1", "2024-01-07", 1.0),
            feature_row(USER_TABLE, "u1", "2024-01-14", 2.0),
            feature_row(USER_TABLE, "17850", "2024-01-14", 5.0, overrides={"tenure_days": None}),
        ],
    )
    write_mart(settings, ITEM_TABLE, [feature_row(ITEM_TABLE, "i1", "2024-01-14", 7.0)])
    apply(settings)
    materialize(settings)


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def served(request: pytest.FixtureRequest, shopflow_home) -> Iterator[Settings]:
    project = f"t{uuid.uuid4().hex[:10]}"
    overrides: dict = {"project": project, "online_store": request.param}
    if request.param == "redis":
        overrides["redis_url"] = request.getfixturevalue("redis_url")
    settings = load_settings(features=overrides)
    settings.ensure_dirs()
    _fill(settings)
    yield settings
    clear_shared_stores()
    if request.param == "redis":
        import redis

        host, port = overrides["redis_url"].split(":")
        client = redis.Redis(host=host, port=int(port))
        keys = list(client.scan_iter(match=b"*" + project.encode(), count=5000))
        if keys:
            client.delete(*keys)
        client.close()


def test_batch_read_keeps_order_and_flags_unknown_ids(served: Settings) -> None:
    frame = get_online_user_features(served, ["17850", "ghost", "u1", 17850, "u1"])
    assert frame["user_id"].tolist() == ["17850", "ghost", "u1", "17850", "u1"]
    assert frame["known"].tolist() == [True, False, True, True, True]
    assert list(frame.columns) == ["user_id", "known", *USER_TABLE.feature_names]
    assert frame[FIRST].tolist()[::2] == [5.0, 2.0, 2.0]
    assert frame.loc[1, USER_TABLE.feature_names].isna().all()
    assert frame["tenure_days"].isna().tolist() == [True, True, False, True, False]
    assert frame[USER_TABLE.feature_names].dtypes.eq("float64").all()


def test_all_unknown_and_empty_requests_never_raise(served: Settings) -> None:
    frame = get_online_user_features(served, ["a", "b"])
    assert frame["known"].tolist() == [False, False]
    assert frame[USER_TABLE.feature_names].isna().all().all()
    empty = get_online_user_features(served, [])
    assert len(empty) == 0 and list(empty.columns) == ["user_id", "known", *USER_TABLE.feature_names]


def test_bad_ids_are_clear_errors(served: Settings) -> None:
    with pytest.raises(ValueError, match=r"user_ids\[1\] is null"):
        get_online_user_features(served, ["u1", None])
    with pytest.raises(TypeError, match="not a single string"):
        get_online_user_features(served, "u1")


def test_item_features(served: Settings) -> None:
    frame = get_online_item_features(served, ["i1", "nope"])
    assert frame["known"].tolist() == [True, False]
    assert frame[ITEM_TABLE.feature_names[0]].tolist()[0] == 7.0


def test_a_held_store_does_not_reread_the_registry(served: Settings) -> None:
    """The service holds one FeatureStore; reads must not query the registry database."""
    from sqlalchemy import event

    store = get_store(served)
    get_online_user_features(served, ["u1"], store=store)  # warm the registry cache
    statements: list[str] = []
    engines = {store.registry.read_engine, store.registry.write_engine}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    for _ in range(25):
        frame = get_online_user_features(served, ["u1", "17850", "ghost"], store=store)
    assert frame["known"].tolist() == [True, True, False]
    assert statements == []


def test_reads_by_settings_reuse_one_store(served: Settings) -> None:
    from shopflow.features.store import shared_store

    first = shared_store(served)
    get_online_user_features(served, ["u1"])
    assert shared_store(served) is first


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_feast_feature_server_answers_http(settings: Settings) -> None:
    """`shopflow features serve` runs Feast's own HTTP server over the same store."""
    _fill(settings)
    port = _free_port()
    # stderr goes to a file: an unread pipe could fill up and stall the server.
    log_path = settings.home_dir.parent / "feast_serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "shopflow.cli", "features", "serve", "--port", str(port)],
            env={**os.environ, "SHOPFLOW_HOME": str(settings.home_dir)},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + 180
        response = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                response = httpx.post(
                    f"http://127.0.0.1:{port}/get-online-features",
                    json={"feature_service": "propensity_v2", "entities": {"user_id": ["u1", "ghost"]}},
                    timeout=10,
                )
                break
            except httpx.TransportError:
                time.sleep(0.5)
        assert response is not None, log_path.read_text(errors="replace")[-2000:] if server.poll() is not None else "no answer"
        assert response.status_code == 200, response.text
        body = response.json()
        names = body["metadata"]["feature_names"]
        first = body["results"][names.index(FIRST)]
        assert first["values"] == [2.0, None]
        assert first["statuses"] == ["PRESENT", "NOT_FOUND"]
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
        assert health.status_code == 200
        assert json.loads(response.text)["metadata"]["feature_names"][0] == "user_id"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)


def test_direct_reads_equal_feast_reads(served: Settings) -> None:
    """The direct SQLite/Redis reader and Feast's get_online_features agree value for value."""
    import pandas as pd

    from shopflow.features.synthetic import random_feature_frame

    frame = random_feature_frame(USER_TABLE, 150, entities=60, cutoffs=3, null_rate=0.2, seed=11)
    write_mart(served, USER_TABLE, frame)
    apply(served)
    materialize(served, start=datetime(2000, 1, 1, tzinfo=UTC))
    ids = [*sorted(frame["user_id"].unique()), "ghost", "u1", "17850", "u0"]
    store = get_store(served)
    direct = get_online_user_features(served, ids, store=store)
    stock = get_online_user_features(served, ids, store=store, direct=False)
    pd.testing.assert_frame_equal(direct, stock)
    assert direct["known"].sum() == 60 + 3  # 60 random users, u1, 17850 and u0 again
    assert direct[USER_TABLE.feature_names].isna().to_numpy().any()


def test_a_model_reading_some_columns_gets_exactly_those(served: Settings) -> None:
    """The serving matrix reads only the model's columns (a SQLite point lookup per
    feature, fewer Redis fields); values and "known" equal the full read's."""
    import numpy as np

    from shopflow.features.online import get_online_matrix
    from shopflow.features.synthetic import random_feature_frame

    frame = random_feature_frame(USER_TABLE, 120, entities=40, cutoffs=3, null_rate=0.2, seed=5)
    write_mart(served, USER_TABLE, frame)
    apply(served)
    materialize(served, start=datetime(2000, 1, 1, tzinfo=UTC))
    ids = [*sorted(frame["user_id"].unique())[:25], "ghost", "u1"]
    store = get_store(served)
    every = USER_TABLE.feature_names
    wanted = [every[7], every[0], "not_served", every[-1]]  # any order, one unknown column
    service = served.features.feature_service
    full, full_known = get_online_matrix(served, USER_TABLE, ids, feature_service=service,
                                         feature_names=every, store=store)
    some, some_known = get_online_matrix(served, USER_TABLE, ids, feature_service=service,
                                         feature_names=wanted, store=store)
    np.testing.assert_array_equal(some_known, full_known)
    assert some_known.sum() == 25 + 1 and not some_known[-2]
    expected = np.column_stack([full[:, 7], full[:, 0], np.full(len(ids), np.nan), full[:, -1]])
    np.testing.assert_array_equal(some, expected)


def _one_user_rows(served: Settings, store: object, ids: list[str],
                   names: list[str]) -> tuple[object, object]:
    """Each id read alone through the serving matrix: ``(values, known)`` stacked."""
    import numpy as np

    from shopflow.features.online import get_online_matrix

    rows = [get_online_matrix(served, USER_TABLE, [user_id], store=store,  # type: ignore[arg-type]
                              feature_service=served.features.feature_service,
                              feature_names=names) for user_id in ids]
    return np.vstack([values for values, _ in rows]), np.concatenate([known for _, known in rows])


def test_one_user_reads_equal_feast_reads(served: Settings) -> None:
    """A one-user read (SQLite: one row of concatenated records) gives Feast's values, for
    every column and for a model's few, nulls included."""
    import numpy as np

    from shopflow.features.synthetic import random_feature_frame

    frame = random_feature_frame(USER_TABLE, 90, entities=30, cutoffs=3, null_rate=0.3, seed=13)
    write_mart(served, USER_TABLE, frame)
    apply(served)
    materialize(served, start=datetime(2000, 1, 1, tzinfo=UTC))
    ids = [*sorted(frame["user_id"].unique()), "ghost", "u1", "17850"]
    store = get_store(served)
    stock = get_online_user_features(served, ids, store=store, direct=False)
    every = USER_TABLE.feature_names
    wanted = [every[7], every[0], every[-1]]
    for names in (every, wanted):
        values, known = _one_user_rows(served, store, ids, names)
        np.testing.assert_array_equal(known, stock["known"].to_numpy())
        np.testing.assert_array_equal(values, stock[names].to_numpy(dtype=float))
    assert np.isnan(stock[every].to_numpy(dtype=float)).any(axis=1).sum() > 10


def test_one_user_sqlite_rows_out_of_the_ordinary(shopflow_home) -> None:
    """Rows the one-row SQLite read cannot decode (a feature without a row, an integer
    value) are read the general way, rows stored in another order are put in order: the
    same answers as the batch read."""
    import sqlite3

    import numpy as np
    from feast.protos.feast.types.Value_pb2 import Value

    from shopflow import internals
    from shopflow.features.online_write import encode_entity_keys
    from shopflow.features.synthetic import random_feature_frame

    settings = load_settings(features={"project": f"t{uuid.uuid4().hex[:10]}"})
    settings.ensure_dirs()
    _fill(settings)
    frame = random_feature_frame(USER_TABLE, 20, entities=10, cutoffs=2, null_rate=0.1, seed=3)
    write_mart(settings, USER_TABLE, frame)
    apply(settings)
    materialize(settings, start=datetime(2000, 1, 1, tzinfo=UTC))
    store = get_store(settings)
    ids = sorted(frame["user_id"].unique())
    table = internals.sqlite_online_table(store.project, store.get_feature_view("user_features_fv"),
                                          versioned=False)
    every = USER_TABLE.feature_names
    key = dict(zip(ids, encode_entity_keys("user_id", ids), strict=True))
    with sqlite3.connect(internals.sqlite_online_path(store.config)) as conn:
        conn.execute(f'DELETE FROM "{table}" WHERE entity_key = ? AND feature_name = ?',
                     [key[ids[0]], every[3]])
        conn.execute(f'UPDATE "{table}" SET value = ? WHERE entity_key = ? AND feature_name = ?',
                     [Value(int64_val=41).SerializeToString(), key[ids[1]], every[5]])
        moved = conn.execute(f'SELECT * FROM "{table}" WHERE entity_key = ? AND feature_name = ?',
                             [key[ids[2]], every[0]]).fetchone()
        conn.execute(f'DELETE FROM "{table}" WHERE entity_key = ? AND feature_name = ?',
                     [key[ids[2]], every[0]])
        conn.execute(f'INSERT INTO "{table}" VALUES ({",".join("?" * len(moved))})', moved)
    clear_shared_stores()
    store = get_store(settings)
    batch = get_online_user_features(settings, ids, store=store)
    values, known = _one_user_rows(settings, store, ids, every)
    np.testing.assert_array_equal(known, batch["known"].to_numpy())
    np.testing.assert_array_equal(values, batch[every].to_numpy(dtype=float))
    assert values[1, 5] == 41.0 and np.isnan(values[0, 3])
    latest = frame.sort_values("cutoff_time").groupby("user_id").tail(1).set_index("user_id")
    np.testing.assert_equal(values[2, 0], latest.loc[ids[2], every[0]])  # moved, still its own
