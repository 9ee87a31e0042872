"""What ``shopflow.internals`` relies on in Feast, redis-py and BentoML still holds.

Each check names the module, the library and its installed version, so a pinned-version
bump that moves or changes a private piece fails here, with a pointer to the one file
to fix, instead of deep inside a materialization or a serving request.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from shopflow import internals

if TYPE_CHECKING:
    from collections.abc import Callable


def _broken(library: str, what: str, problem: str) -> str:
    return (
        f"shopflow.internals relies on {what} from {library} {version(library)}, but {problem}; "
        "update src/shopflow/internals.py (and its docstrings) for this version"
    )


def _params(target: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(target).parameters)


def _callable_without_args(target: Callable[..., Any], skip: int = 1) -> bool:
    """Whether ``target`` (an unbound method: ``skip`` = self) needs no further arguments."""
    params = list(inspect.signature(target).parameters.values())[skip:]
    return all(
        p.default is not inspect.Parameter.empty
        or p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        for p in params
    )


def _feast_sqlite_store() -> Any:
    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    return SqliteOnlineStore


def _feast_sqlite_table_id() -> Any:
    from feast.infra.online_stores.sqlite import _table_id

    return _table_id


def _feast_helpers() -> Any:
    from feast.infra.online_stores import helpers

    return helpers


def _feast_redis_store() -> Any:
    from feast.infra.online_stores.redis import RedisOnlineStore

    return RedisOnlineStore


def _feast_redis_type() -> Any:
    from feast.infra.online_stores.redis import RedisType

    return RedisType


def _feast_feature_store() -> Any:
    from feast import FeatureStore

    return FeatureStore


def _feast_provider() -> Any:
    from feast.infra.provider import Provider

    return Provider


def _redis_connection() -> Any:
    from redis.connection import Connection

    return Connection


def _redis_pool() -> Any:
    from redis.connection import ConnectionPool

    return ConnectionPool


#: (library, what, check): ``check`` returns None when the reliance holds, else the problem.
SHAPE_CHECKS: list[tuple[str, str, Callable[[], str | None]]] = [
    ("feast", "SqliteOnlineStore._get_db_path(config)",
     lambda: None if _params(_feast_sqlite_store()._get_db_path) == ["config"]
     else f"its parameters are {_params(_feast_sqlite_store()._get_db_path)}"),
    ("feast", "feast.infra.online_stores.sqlite._table_id(project, table, enable_versioning)",
     lambda: None
     if _params(_feast_sqlite_table_id())[:3] == ["project", "table", "enable_versioning"]
     else f"its parameters are {_params(_feast_sqlite_table_id())}"),
    ("feast", "feast.infra.online_stores.helpers._mmh3(key)",
     lambda: None if _params(_feast_helpers()._mmh3) == ["key"]
     else f"its parameters are {_params(_feast_helpers()._mmh3)}"),
    ("feast", "feast.infra.online_stores.helpers._redis_key(project, entity_key, ...)",
     lambda: None if _params(_feast_helpers()._redis_key)[:2] == ["project", "entity_key"]
     else f"its parameters are {_params(_feast_helpers()._redis_key)}"),
    ("feast", "RedisOnlineStore._parse_connection_string(connection_string)",
     lambda: None
     if _params(_feast_redis_store()._parse_connection_string) == ["connection_string"]
     else f"its parameters are {_params(_feast_redis_store()._parse_connection_string)}"),
    ("feast", "the _ts:<view> timestamp field of RedisOnlineStore",
     lambda: None if 'f"_ts:{' in inspect.getsource(_feast_redis_store())
     else "RedisOnlineStore's source no longer builds f\"_ts:{...}\" fields"),
    ("feast", "RedisType.redis",
     lambda: None if hasattr(_feast_redis_type(), "redis") else "RedisType has no member redis"),
    ("feast", "FeatureStore._get_provider()",
     lambda: None if _params(_feast_feature_store()._get_provider) == ["self"]
     else f"its parameters are {_params(_feast_feature_store()._get_provider)}"),
    ("feast", "Provider.online_write_batch(config, table, data, progress)",
     lambda: None
     if _params(_feast_provider().online_write_batch)[1:5] == ["config", "table", "data", "progress"]
     else f"its parameters are {_params(_feast_provider().online_write_batch)}"),
    ("redis", "ConnectionPool.get_connection() without arguments",
     lambda: None if _callable_without_args(_redis_pool().get_connection)
     else f"its parameters are {_params(_redis_pool().get_connection)}"),
    ("redis", "ConnectionPool.release(connection)",
     lambda: None if _params(_redis_pool().release)[:2] == ["self", "connection"]
     else f"its parameters are {_params(_redis_pool().release)}"),
    ("redis", "Connection.connect() and Connection.disconnect()",
     lambda: None
     if _callable_without_args(_redis_connection().connect)
     and _callable_without_args(_redis_connection().disconnect)
     else "one of them now needs arguments"),
    ("redis", "Connection.send_packed_command(command, check_health=...)",
     lambda: None
     if _params(_redis_connection().send_packed_command)[:3] == ["self", "command", "check_health"]
     else f"its parameters are {_params(_redis_connection().send_packed_command)}"),
    ("redis", "the private Connection._sock attribute",
     lambda: None if hasattr(_redis_connection()(), "_sock") else "a new Connection has no _sock"),
]


@pytest.mark.parametrize(("library", "what", "check"), SHAPE_CHECKS,
                         ids=[f"{lib}:{what}" for lib, what, _ in SHAPE_CHECKS])
def test_private_apis_keep_their_shape(library: str, what: str,
                                       check: Callable[[], str | None]) -> None:
    try:
        problem = check()
    except (ImportError, AttributeError) as exc:
        problem = f"it is gone ({exc!r})"
    if problem is not None:
        pytest.fail(_broken(library, what, problem))


# ---- behaviour on known inputs -------------------------------------------------------


def test_redis_feature_field_is_feasts_murmur_hash() -> None:
    field = internals.redis_feature_field("user_features_fv", "a")
    if field != b"\xd2\xed\xe8\x95":
        pytest.fail(_broken("feast", "_mmh3('user_features_fv:a')", f"it now gives {field!r}"))
    assert internals.redis_timestamp_field("user_features_fv") == b"_ts:user_features_fv"


def test_redis_key_of_a_known_entity() -> None:
    from feast.infra.online_stores.helpers import _redis_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    from shopflow.features.online_write import encode_entity_keys

    known = (b"\x01\x00\x00\x00\x02\x00\x00\x00\x07\x00\x00\x00user_id"
             b"\x02\x00\x00\x00\x05\x00\x00\x0017850shopflow")
    ours = internals.redis_hash_keys(encode_entity_keys("user_id", ["17850"]), "shopflow")
    theirs = _redis_key(
        "shopflow", EntityKey(join_keys=["user_id"], entity_values=[Value(string_val="17850")])
    )
    if theirs != known:
        pytest.fail(_broken("feast", "_redis_key's layout", f"it now gives {theirs!r}"))
    assert ours == [known]


def test_redis_connection_params_parse_feast_strings() -> None:
    nodes, options = internals.redis_connection_params("cache:6380,db=2,password=secret,ssl=true")
    expected = ([{"host": "cache", "port": "6380"}], {"db": 2, "password": "secret", "ssl": True})
    if (nodes, options) != expected:
        pytest.fail(_broken("feast", "RedisOnlineStore._parse_connection_string",
                            f"it now gives {(nodes, options)!r}"))


def test_sqlite_path_and_table_follow_feast(tmp_path: Path) -> None:
    from feast import Entity, FeatureView, Field, FileSource
    from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig
    from feast.repo_config import RepoConfig
    from feast.types import Float64
    from feast.value_type import ValueType

    config = RepoConfig(
        project="shop", provider="local", registry=str(tmp_path / "registry.db"),
        online_store=SqliteOnlineStoreConfig(path="data/online.db"), repo_path=tmp_path,
        entity_key_serialization_version=3,
    )
    path = internals.sqlite_online_path(config)
    if path != str(tmp_path / "data" / "online.db"):
        pytest.fail(_broken("feast", "SqliteOnlineStore._get_db_path", f"it now gives {path!r}"))
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING)
    view = FeatureView(name="user_features_fv", entities=[user],
                       schema=[Field(name="a", dtype=Float64)],
                       source=FileSource(path=str(tmp_path / "x.parquet"), timestamp_field="ts"))
    table = internals.sqlite_online_table("shop", view, versioned=False)
    if table != "shop_user_features_fv":
        pytest.fail(_broken("feast", "sqlite._table_id", f"it now gives {table!r}"))


@pytest.mark.redis
def test_raw_redis_connection_round_trip(redis_url: str) -> None:
    """Check out a pooled connection, send packed bytes, read the reply off its socket."""
    from redis import Redis

    host, port = redis_url.split(":")
    client = Redis(host=host, port=int(port))
    try:
        connection = internals.redis_checkout_connection(client)
        internals.redis_send_packed(connection, b"*1\r\n$4\r\nPING\r\n")
        reply = internals.redis_socket(connection).recv(64)
        internals.redis_return_connection(client, connection, discard=False)
    finally:
        client.close()
    if reply != b"+PONG\r\n":
        pytest.fail(_broken("redis", "raw connection access", f"PING answered {reply!r}"))


def test_bentoml_stores_follow_home(tmp_path: Path) -> None:
    try:
        from bentoml._internal.configuration.containers import BentoMLContainer
    except ImportError as exc:
        pytest.fail(_broken("bentoml", "bentoml._internal.configuration.containers",
                            f"it is gone ({exc!r})"))
    import bentoml

    home = tmp_path / "bentoml"
    for sub in ("models", "bentos", "envs", "tmp"):
        (home / sub).mkdir(parents=True)
    internals.bentoml_use_home(home)
    if getattr(BentoMLContainer.bentoml_home, "_override", None) != str(home):
        pytest.fail(_broken("simple-di", "Provider._override",
                            "it no longer holds the value set(); every call rebuilds the stores"))
    store = BentoMLContainer.model_store.get()
    internals.bentoml_use_home(home)
    assert BentoMLContainer.model_store.get() is store  # same home: nothing rebuilt
    for name in ("model_store_dir", "bento_store_dir", "tmp_bento_store_dir", "env_store_dir"):
        assert str(getattr(BentoMLContainer, name).get()).startswith(str(home)), name
    assert bentoml.models.list() == []
    with bentoml.models.create("internals-probe") as model:
        (Path(model.path) / "x").write_text("1")
    if not (home / "models" / "internals-probe").is_dir():
        pytest.fail(_broken("bentoml", "BentoMLContainer.model_store overrides",
                            "a saved model did not land under the configured home"))
