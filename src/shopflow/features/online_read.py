"""Direct batch reads of Feast's SQLite and Redis online layouts (the serving hot path).

``FeatureStore.get_online_features`` builds protobuf requests and responses per entity
and per value; for 100 users that costs ~10x the store round trip itself. The layouts
are known (``online_write`` writes them, and tests compare both read paths value for
value), so this reader fetches the same bytes in one round trip and decodes the
9-byte ``double_val`` records directly. Anything else (another store type, another value
type) goes through Feast's own decoding. The private pieces of those layouts (table
name, DB path, hash fields and keys, the Redis client) come from :mod:`shopflow.internals`.
"""

from __future__ import annotations

import struct
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from shopflow import internals
from shopflow.features.online_write import encode_entity_keys

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView

_DOUBLE = struct.Struct("<d")


def _decode(value: bytes | None) -> float:
    """A serialized Feast ``Value`` as float; missing or empty -> NaN."""
    if not value:
        return np.nan
    if len(value) == 9 and value[0] == 0x29:
        number: float = _DOUBLE.unpack_from(value, 1)[0]
        return number
    from feast.protos.feast.types.Value_pb2 import Value

    proto = Value()
    proto.ParseFromString(value)
    kind = proto.WhichOneof("val")
    if kind in {"double_val", "float_val", "int64_val", "int32_val"}:
        return float(getattr(proto, kind))
    if kind == "bool_val":
        return float(proto.bool_val)
    return np.nan


class DirectReader:
    """Reads one FeatureStore's online rows without Feast's per-value protobuf work.

    Thread-safe: Redis uses a connection pool, SQLite a connection per thread.
    """

    def __init__(self, store: FeatureStore) -> None:
        self.store = store
        self.kind = store.config.online_store.type
        self._local = threading.local()
        self._redis: Any = None

    @staticmethod
    def supports(store: FeatureStore) -> bool:
        online = store.config.online_store
        if store.config.registry.enable_online_feature_view_versioning:
            return False
        if online.type == "redis":
            return str(getattr(online, "redis_type", "redis")).endswith("redis")
        return online.type == "sqlite" and not getattr(online, "vector_enabled", False)

    def read(self, view: FeatureView, names: list[str], ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(known, values)`` for ``ids``: a bool array and a float64 array (ids x names)."""
        join_key = view.join_keys[0]
        keys = encode_entity_keys(join_key, ids)
        if self.kind == "redis":
            return self._read_redis(view, names, keys)
        return self._read_sqlite(view, names, keys)

    def _read_redis(self, view: FeatureView, names: list[str], keys: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        if self._redis is None:
            self._redis = internals.feast_redis_client(self.store)
        fields = [internals.redis_feature_field(view.name, name) for name in names]
        fields.append(internals.redis_timestamp_field(view.name))
        pipe = self._redis.pipeline(transaction=False)
        for key in internals.redis_hash_keys(keys, self.store.config.project):
            pipe.hmget(key, fields)
        replies = pipe.execute()
        known = np.fromiter((reply[-1] is not None for reply in replies), dtype=bool, count=len(keys))
        values = np.array(
            [[_decode(v) for v in reply[:-1]] if ok else [np.nan] * len(names)
             for reply, ok in zip(replies, known.tolist(), strict=True)],
            dtype="float64",
        ).reshape(len(keys), len(names))
        return known, values

    def _sqlite_conn(self) -> Any:
        import sqlite3

        conn = getattr(self._local, "conn", None)
        if conn is None:
            path = internals.sqlite_online_path(self.store.config)
            conn = sqlite3.connect(path, timeout=30.0, check_same_thread=False)
            self._local.conn = conn
        return conn

    def _read_sqlite(self, view: FeatureView, names: list[str], keys: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        # unversioned: supports() turns stores with feature-view versioning away
        table = internals.sqlite_online_table(self.store.config.project, view, versioned=False)
        table = table.replace('"', '""')
        first: dict[bytes, int] = {}
        for index, key in enumerate(keys):
            first.setdefault(key, index)
        column = {name: j for j, name in enumerate(names)}
        found = [False] * len(keys)
        values = np.full((len(keys), len(names)), np.nan)
        unique = list(first)
        conn = self._sqlite_conn()
        # SQLite allows 32766 host parameters; stay well below.
        for start in range(0, len(unique), 10_000):
            chunk = unique[start:start + 10_000]
            rows = conn.execute(
                f'SELECT entity_key, feature_name, value FROM "{table}" '
                f"WHERE entity_key IN ({','.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
            for key, name, raw in rows:
                row = first[key]
                found[row] = True
                j = column.get(name)
                if j is not None:
                    values[row, j] = _decode(raw)
        if len(first) < len(keys):  # repeated ids: copy the first occurrence
            for index, key in enumerate(keys):
                row = first[key]
                if row != index:
                    found[index] = found[row]
                    values[index] = values[row]
        known = np.array(found, dtype=bool)
        return known, values
