"""The one module that touches private internals of Feast, redis-py and BentoML.

Shopflow writes and reads Feast's online stores in bulk (``features/online_write.py``,
``features/online_read.py``) and points BentoML's process-wide stores at the configured
home (``registry/store.py``). Both need pieces the libraries do not export: underscored
helpers, private attributes, ``bentoml._internal``. Every such use lives here, as one
small function whose docstring says what it relies on and why Shopflow needs it, so a
library upgrade has one file to review.

``tests/unit/test_library_internals.py`` checks each reliance against the installed
versions (the attribute exists, the signature still fits, and a known input still gives
the known output) and names this module and the library version when one breaks.
Byte layouts that Shopflow re-implements from Feast's *public* functions (entity-key
serialization, ``Value`` and ``Timestamp`` protobufs) stay in ``online_write`` and are
pinned byte for byte by ``tests/unit/test_features_encoding.py``.

Imports of the libraries happen inside the functions, so importing this module is cheap
and has no side effects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import socket
    from collections.abc import Sequence
    from pathlib import Path

    from feast import FeatureStore, FeatureView
    from feast.infra.provider import Provider
    from feast.repo_config import RepoConfig
    from redis import Redis
    from redis.connection import Connection


# ---- Feast: SQLite online store ------------------------------------------------------


def sqlite_online_path(config: RepoConfig) -> str:
    """Path of the SQLite file behind a Feast SQLite online store.

    Relies on ``feast.infra.online_stores.sqlite.SqliteOnlineStore._get_db_path(config)``
    (static, private): it resolves a relative ``online_store.path`` against the repo
    path exactly as Feast's own reads and writes do, so the bulk writer and the direct
    reader open the very file Feast uses.
    """
    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    path: str = SqliteOnlineStore._get_db_path(config)
    return path


def sqlite_online_table(project: str, view: FeatureView, *, versioned: bool) -> str:
    """Name of the SQLite table that holds ``view``'s online rows in ``project``.

    Relies on ``feast.infra.online_stores.sqlite._table_id(project, table,
    enable_versioning)`` (module-private): Feast names the table ``<project>_<view>``
    (plus a version suffix when online feature-view versioning is on); writing or
    reading any other name would miss Feast's rows.
    """
    from feast.infra.online_stores.sqlite import _table_id

    table: str = _table_id(project, view, versioned)
    return table


# ---- Feast: Redis online store -------------------------------------------------------


def redis_feature_field(view_name: str, feature_name: str) -> bytes:
    """Hash field under which Feast's Redis store keeps one feature of one view.

    Relies on ``feast.infra.online_stores.helpers._mmh3`` (module-private): the field is
    the 4-byte little-endian murmur3 hash of ``"<view>:<feature>"``. The bulk writer
    sets these fields and the direct reader fetches them, so both must hash as Feast
    does or ``get_online_features`` would not find the values.
    """
    from feast.infra.online_stores.helpers import _mmh3

    field: bytes = _mmh3(f"{view_name}:{feature_name}")
    return field


def redis_timestamp_field(view_name: str) -> bytes:
    """Hash field that holds a view's event timestamp in Feast's Redis layout.

    Relies on the literal ``f"_ts:{feature_view}"`` inside
    ``RedisOnlineStore.online_write_batch`` / ``online_read`` (not exported): Feast
    checks it to keep newer values and treats a hash without it as missing.
    """
    return f"_ts:{view_name}".encode()


def redis_hash_keys(entity_keys: Sequence[bytes], project: str) -> list[bytes]:
    """Redis keys of serialized entity keys (``online_write.encode_entity_keys``).

    Relies on ``feast.infra.online_stores.helpers._redis_key`` (module-private): a key
    is the serialized ``EntityKey`` followed by the UTF-8 project name, so the same
    entity in two projects is two hashes.
    """
    suffix = project.encode("utf-8")
    return [key + suffix for key in entity_keys]


def redis_connection_params(connection_string: str) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """``(nodes, options)`` of a Feast Redis ``connection_string``.

    Relies on ``RedisOnlineStore._parse_connection_string(connection_string)`` (static,
    private): ``"host:port,db=2,password=..."`` -> ``[{"host", "port"}], {"db": 2, ...}``
    (option values JSON-decoded where they parse). Using Feast's parser keeps Shopflow's
    own client on the same server, database and credentials as Feast's.
    """
    from feast.infra.online_stores.redis import RedisOnlineStore

    nodes, options = RedisOnlineStore._parse_connection_string(connection_string)
    return nodes, options


def feast_redis_client(store: FeatureStore) -> Redis:
    """A redis-py client for the store's (single-node) Redis, built the way Feast does.

    Relies on :func:`redis_connection_params` and on Feast's ``RedisType`` enum in
    ``feast.infra.online_stores.redis``; mirrors the single-node branch of the private
    ``RedisOnlineStore._get_client``. Cluster and Sentinel deployments are refused, as
    the bulk writer and direct reader address one node.
    """
    from feast.infra.online_stores.redis import RedisType
    from redis import Redis

    online = store.config.online_store
    if online.redis_type != RedisType.redis:
        raise NotImplementedError("the bulk Redis writer supports single-node Redis only")
    nodes, options = redis_connection_params(online.connection_string)
    return Redis(host=nodes[0]["host"], port=int(nodes[0]["port"]), **options)


# ---- Feast: any online store ---------------------------------------------------------


def feast_provider(store: FeatureStore) -> Provider:
    """The provider a ``FeatureStore`` writes its online store through.

    Relies on ``FeatureStore._get_provider()`` (private): ``write_generic`` hands
    pre-built rows to ``provider.online_write_batch`` for online stores Shopflow has no
    bulk writer for; the public ``write_to_online_store`` would need a DataFrame per
    batch and re-convert every value.
    """
    provider: Provider = store._get_provider()
    return provider


# ---- redis-py: one raw connection ----------------------------------------------------


def redis_checkout_connection(client: Redis) -> Connection:
    """Take one connection out of ``client``'s pool and open it.

    Relies on ``client.connection_pool.get_connection()`` called without arguments and
    on ``Connection.connect()``: the connection is set
    up by redis-py (AUTH, SELECT, TLS as the connection string says) and then used for
    raw RESP bytes by the bulk writer.
    """
    connection: Connection = client.connection_pool.get_connection()
    connection.connect()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
    return connection


def redis_send_packed(connection: Connection, payload: bytes) -> None:
    """Write pre-built RESP bytes to ``connection`` without a health check.

    Relies on ``Connection.send_packed_command(command, check_health=...)``: commands
    assembled as bytes in bulk go out as one write; the health-check PING would put an
    extra reply into the stream the caller parses itself.
    """
    connection.send_packed_command(  # type: ignore[no-untyped-call]  # unannotated in redis-py
        [payload], check_health=False
    )


def redis_socket(connection: Connection) -> socket.socket:
    """The socket under an open redis-py connection, to read raw replies from.

    Relies on the private ``Connection._sock``: the bulk writer parses replies with its
    own ``hiredis.Reader`` straight from the socket, a few thousand at a time, instead
    of one ``read_response`` call per command.
    """
    sock: socket.socket | None = connection._sock
    if sock is None:
        raise ConnectionError("the redis-py connection is not open")
    return sock


def redis_return_connection(client: Redis, connection: Connection, *, discard: bool) -> None:
    """Give a connection from :func:`redis_checkout_connection` back to its pool.

    Relies on ``Connection.disconnect()`` and ``ConnectionPool.release(connection)``.
    ``discard`` closes it first (replies still unread would otherwise reach the next
    user of the pooled connection).
    """
    if discard:
        connection.disconnect()  # type: ignore[no-untyped-call]  # unannotated in redis-py
    client.connection_pool.release(connection)


# ---- BentoML: process-wide stores ----------------------------------------------------


def bentoml_use_home(home: Path) -> None:
    """Point BentoML's process-wide model and bento stores at ``home``.

    Relies on ``bentoml._internal.configuration.containers.BentoMLContainer`` (its
    ``bentoml_home``, ``*_store_dir``, ``model_store`` and ``bento_store`` providers and
    their ``set``), ``bentoml._internal.models.ModelStore`` and
    ``bentoml._internal.bento.BentoStore``, and simple-di's private ``Provider._override``.
    BentoML reads ``BENTOML_HOME`` once into these singletons; overriding them is the
    only way to switch stores in a running process. ``_override`` is compared (not
    ``get()``, which would build the default ``~/bentoml`` store) so repeated calls for
    the same home cost nothing. The ``models``, ``bentos``, ``envs`` and ``tmp``
    folders under ``home`` must exist (``registry.store.use_model_store`` creates them).
    """
    from bentoml._internal.bento import BentoStore
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    if getattr(BentoMLContainer.bentoml_home, "_override", None) == str(home):
        return
    BentoMLContainer.bentoml_home.set(str(home))
    BentoMLContainer.model_store_dir.set(str(home / "models"))
    BentoMLContainer.bento_store_dir.set(str(home / "bentos"))
    BentoMLContainer.tmp_bento_store_dir.set(str(home / "tmp"))
    BentoMLContainer.env_store_dir.set(str(home / "envs"))
    BentoMLContainer.model_store.set(ModelStore(str(home / "models")))
    BentoMLContainer.bento_store.set(BentoStore(str(home / "bentos")))
