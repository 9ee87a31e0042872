"""Bulk writers into Feast's online stores, in the stores' own formats.

Feast's stock materialization builds one protobuf per value and, on SQLite, executes one
statement per value; on Redis it sends one redis-py command per entity after reading the
stored timestamps back. For millions of values that is the bottleneck, not the store.
These writers produce the *same bytes* Feast writes (so the stock
``FeatureStore.get_online_features`` reads them back) but build them in bulk:

- values: a ``double_val`` ``Value`` protobuf is a fixed 9-byte record (tag ``0x29`` +
  little-endian float64), so every value of a batch is encoded with one NumPy operation;
  a missing value (NaN) is Feast's empty ``Value`` (``b""``), read back as null;
- entity keys: Feast's serialization v3 for one string join key is a constant prefix plus
  ``len`` and the UTF-8 id;
- SQLite: one ``executemany`` upsert per chunk inside one transaction, with a ``WHERE``
  that never lets an older row overwrite a newer one;
- Redis: RESP ``HSET`` commands assembled as bytes and pipelined on a raw connection,
  one round trip per few thousand entities; replies parsed by hiredis.

``tests/unit/test_features_encoding.py`` checks the encodings byte for byte against
Feast's own functions, so a Feast upgrade that changes them fails loudly. What this
needs from Feast's and redis-py's private internals (table names, DB path, hash fields,
raw connections) comes from :mod:`shopflow.internals`.
"""

from __future__ import annotations

import logging
import struct
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from shopflow import internals

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from feast import FeatureStore, FeatureView

logger = logging.getLogger(__name__)

_DOUBLE_TAG = 0x29  # Value.double_val: field 5, wire type 1 (64-bit)
_STRING_TYPE = 2  # feast ValueType.STRING


@dataclass
class FeatureRows:
    """Latest feature values of some entities of one feature view, column-oriented."""

    ids: list[str]
    """Entity ids (the view's single join key), unique."""
    values: np.ndarray
    """float64 array (len(ids), len(feature_names)); NaN = missing."""
    feature_names: list[str]
    event_ts: np.ndarray
    """datetime64[us] naive UTC, one per entity."""
    created_ts: np.ndarray
    """datetime64[us] naive UTC, one per entity."""

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class WriteStats:
    """What a bulk write did."""

    entities: int = 0
    """Entities offered to the store."""
    written: int = 0
    """Entities whose values were (re)written."""
    skipped_newer: int = 0
    """Entities left alone because the store already held a newer value."""
    seconds: float = 0.0


def entity_key_prefix(join_key: str) -> bytes:
    """Feast's v3 serialization of a one-string-key EntityKey, up to the value bytes."""
    name = join_key.encode()
    return (
        struct.pack("<I", 1)
        + struct.pack("<I", _STRING_TYPE)
        + struct.pack("<I", len(name))
        + name
        + struct.pack("<I", _STRING_TYPE)
    )


def encode_entity_keys(join_key: str, ids: Sequence[str]) -> list[bytes]:
    """Serialized entity keys, equal to ``feast.infra.key_encoding_utils.serialize_entity_key``."""
    prefix = entity_key_prefix(join_key)
    pack = struct.Struct("<I").pack
    out = []
    for value in ids:
        raw = value.encode()
        out.append(prefix + pack(len(raw)) + raw)
    return out


def encode_double_matrix(values: np.ndarray) -> np.ndarray:
    """Serialized ``Value(double_val=x)`` records, as a uint8 array (n, f, 9).

    NaN cells still hold a record here; callers replace them with ``b""`` (null).
    """
    values = np.ascontiguousarray(values, dtype="<f8")
    n, f = values.shape
    out = np.empty((n, f, 9), dtype=np.uint8)
    out[:, :, 0] = _DOUBLE_TAG
    out[:, :, 1:] = values.view(np.uint8).reshape(n, f, 8)
    return out


def encode_double_values(values: np.ndarray) -> list[bytes]:
    """Serialized ``Value`` protobufs of a float64 matrix, row-major; NaN -> ``b""``."""
    n, f = values.shape
    records = encode_double_matrix(values).reshape(n * f, 9).view("V9").ravel().tolist()
    for index in np.flatnonzero(np.isnan(values).ravel()).tolist():
        records[index] = b""
    return records


def timestamp_proto_bytes(ts: np.datetime64) -> bytes:
    """Serialized ``google.protobuf.Timestamp`` of a naive-UTC instant (Feast's ``_ts`` field)."""
    from google.protobuf.timestamp_pb2 import Timestamp

    proto = Timestamp()
    proto.FromDatetime(_to_aware(ts))
    data: bytes = proto.SerializeToString()
    return data


def _to_aware(ts: np.datetime64) -> datetime:
    micros = int(np.asarray(ts).astype("datetime64[us]").astype("int64"))
    return datetime.fromtimestamp(micros / 1_000_000, tz=UTC).replace(
        microsecond=micros % 1_000_000
    )


def _sqlite_epoch(ts: np.datetime64) -> int:
    """What Feast's sqlite adapter stores for a timestamp: ``int(naive_utc.timestamp())``."""
    return int(_to_aware(ts).replace(tzinfo=None).timestamp())


def _by_unique(stamps: np.ndarray, convert: Callable[[np.datetime64], Any]) -> list[Any]:
    """Convert each distinct timestamp once (marts have few distinct cutoffs)."""
    uniques, inverse = np.unique(stamps, return_inverse=True)
    converted = [convert(u) for u in uniques]
    return [converted[i] for i in inverse.tolist()]


# ---- SQLite -------------------------------------------------------------------------


def _sqlite_table(store: FeatureStore, view: FeatureView) -> tuple[str, str]:
    """The online store's SQLite file and the (unquoted) name of ``view``'s table there."""
    config = store.config
    table = internals.sqlite_online_table(
        config.project, view, versioned=config.registry.enable_online_feature_view_versioning
    )
    return internals.sqlite_online_path(config), table


def quote_identifier(name: str) -> str:
    """``name`` as a double-quoted SQL identifier (SQLite, DuckDB and PostgreSQL alike)."""
    return '"' + name.replace('"', '""') + '"'


@contextmanager
def sqlite_indexes_deferred(store: FeatureStore, view: FeatureView) -> Iterator[None]:
    """Around a first load into ``view``'s SQLite table: build its indexes after the rows.

    Feast's table has, besides its primary key on ``(entity_key, feature_name)``, an index
    on ``entity_key`` alone. Kept up to date row by row it costs a big load about a quarter
    of its time; built in one pass over the loaded rows it costs a few seconds. So when the
    table is empty (a first materialization), its explicit indexes are dropped, the load
    runs, and the very ``CREATE INDEX`` statements SQLite recorded for them (in
    ``sqlite_master``) run again at the end, also when the load fails. Meanwhile reads use
    the primary key, which starts with ``entity_key``. A table that already holds rows
    keeps its indexes: an incremental write would pay for rebuilding them whole. A process
    killed mid-load leaves the index missing (reads still work); ``shopflow features
    apply`` recreates it, as Feast creates it when absent.
    """
    import sqlite3

    path, table = _sqlite_table(store, view)
    conn = sqlite3.connect(path, timeout=60.0)
    try:
        empty = conn.execute(f"SELECT 1 FROM {quote_identifier(table)} LIMIT 1").fetchone() is None
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
            "AND sql IS NOT NULL", (table,)
        ).fetchall() if empty else []
        with conn:
            for name, _ in indexes:
                conn.execute(f"DROP INDEX {quote_identifier(name)}")
    finally:
        conn.close()
    try:
        yield
    finally:
        if indexes:
            _recreate_indexes(path, indexes)


def _recreate_indexes(path: str, indexes: list[tuple[str, str]]) -> None:
    """Run the recorded ``CREATE INDEX`` statements of indexes that do not exist (again)."""
    import sqlite3

    started = time.perf_counter()
    conn = sqlite3.connect(path, timeout=60.0)
    try:
        conn.execute("PRAGMA cache_size=-262144")
        with conn:
            for name, sql in indexes:
                exists = conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)
                ).fetchone()
                if not exists:  # `features apply` may have recreated it meanwhile
                    conn.execute(sql)
    finally:
        conn.close()
    logger.info("rebuilt index(es) %s in %.2fs", [name for name, _ in indexes],
                time.perf_counter() - started)


def write_sqlite(
    store: FeatureStore,
    view: FeatureView,
    rows: FeatureRows,
    *,
    progress: Callable[[int], None] | None = None,
    check_newer: bool = True,
    chunk_entities: int = 20_000,
) -> WriteStats:
    """Upsert rows into Feast's SQLite online table of ``view`` (one row per value).

    ``check_newer`` is accepted for a uniform signature: the upsert's ``WHERE`` always
    keeps newer stored values, at no extra cost.

    Values are replaced only when the incoming ``event_ts`` is at least the stored one,
    so re-running a window is a no-op in effect and an old window never clobbers newer
    data. Each chunk of entities is one transaction: a reader sees every feature of an
    entity from the same row, and the write-ahead log stays small on big loads.

    Rows go in primary-key order (entities come sorted by serialized key, see
    ``read_latest_rows``; each entity's features are sent sorted by name), so every
    insert lands at the right edge of the key's B-tree instead of inside a leaf.
    """
    import sqlite3

    started = time.perf_counter()
    path, table = _sqlite_table(store, view)
    conn = sqlite3.connect(path, timeout=60.0)
    stats = WriteStats(entities=len(rows))
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA cache_size=-262144")  # 256 MiB of pages for the index B-trees
        existing = {r[1] for r in conn.execute(f"PRAGMA table_info({quote_identifier(table)})")}
        if not existing:
            raise RuntimeError(
                f"online table {table} does not exist in {path}; run `shopflow features apply`"
            )
        quoted = quote_identifier(table)
        sql = (
            f"INSERT INTO {quoted} (entity_key, feature_name, value, value_text, event_ts, "
            "created_ts) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(entity_key, feature_name) DO "
            "UPDATE SET value = excluded.value, value_text = excluded.value_text, "
            "event_ts = excluded.event_ts, created_ts = excluded.created_ts "
            f"WHERE excluded.event_ts >= {quoted}.event_ts"
        )
        n_features = len(rows.feature_names)
        order = sorted(range(n_features), key=rows.feature_names.__getitem__)
        names = [rows.feature_names[j] for j in order]
        before = conn.total_changes
        for start in range(0, len(rows), chunk_entities):
            stop = min(start + chunk_entities, len(rows))
            values = rows.values[start:stop][:, order]
            keys = encode_entity_keys(_join_key(view), rows.ids[start:stop])
            event = _by_unique(rows.event_ts[start:stop], _sqlite_epoch)
            created = _by_unique(rows.created_ts[start:stop], _sqlite_epoch)
            batch = zip(
                _repeat_each(keys, n_features),
                names * (stop - start),
                encode_double_values(values),
                _value_texts(values),
                _repeat_each(event, n_features),
                _repeat_each(created, n_features),
                strict=True,
            )
            with conn:
                conn.executemany(sql, batch)
            if progress:
                progress(stop - start)
        changed = conn.total_changes - before
    finally:
        conn.close()
    stats.written = changed // max(n_features, 1)
    stats.skipped_newer = stats.entities - stats.written
    stats.seconds = time.perf_counter() - started
    return stats


def _repeat_each(items: list[Any], times: int) -> list[Any]:
    """``[a, b] -> [a, a, b, b]`` for ``times == 2``: one entry per stored value."""
    return [item for item in items for _ in range(times)]


def _value_texts(values: np.ndarray) -> list[str | None]:
    """Feast's ``value_text`` column: ``str(x)`` of each double, None for a missing value."""
    texts: list[str | None] = list(map(repr, values.ravel().tolist()))
    for index in np.flatnonzero(np.isnan(values).ravel()).tolist():
        texts[index] = None
    return texts


def _join_key(view: FeatureView) -> str:
    keys = view.join_keys
    if len(keys) != 1:
        raise ValueError(f"bulk writers handle views with one join key; {view.name} has {keys}")
    return keys[0]


# ---- Redis --------------------------------------------------------------------------


def _resp_bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


class _RespPipe:
    """A raw RESP pipeline on one redis-py connection: send bytes, count replies.

    redis-py opens the connection (so AUTH, SELECT and TLS follow the connection string);
    commands then go out as pre-built bytes and hiredis parses the replies. The
    connection handling relies on redis-py internals, through :mod:`shopflow.internals`.
    """

    def __init__(self, client: Any) -> None:
        import hiredis

        self._client = client
        self._conn = internals.redis_checkout_connection(client)
        self._reader = hiredis.Reader()
        self._pending = 0

    def send(self, payload: bytes, commands: int) -> None:
        internals.redis_send_packed(self._conn, payload)
        self._pending += commands

    def replies(self, count: int) -> list[Any]:
        """Read ``count`` replies (in order); raise on the first error reply."""
        import hiredis

        out: list[Any] = []
        sock = internals.redis_socket(self._conn)
        while len(out) < count:
            reply = self._reader.gets()
            if reply is False:
                data = sock.recv(1 << 20)
                if not data:
                    raise ConnectionError("Redis closed the connection mid-pipeline")
                self._reader.feed(data)
                continue
            if isinstance(reply, hiredis.ReplyError):
                raise RuntimeError(f"Redis rejected a bulk write: {reply}")
            out.append(reply)
        self._pending -= count
        return out

    def close(self) -> None:
        internals.redis_return_connection(self._client, self._conn, discard=bool(self._pending))


def _resp_field_runs(field_heads: list[bytes], values: np.ndarray) -> list[bytes]:
    """Per entity, the RESP ``field value`` pairs of an HSET, NaN as an empty ``Value``.

    Every cell is laid out as ``$4 hash $9 value`` (25 bytes) in one NumPy array; a NaN
    cell keeps only its first 16 bytes, overwritten with ``$0\\r\\n\\r\\n`` (empty bulk
    string). A boolean mask then packs all rows into one buffer, sliced per entity.
    """
    n, f = values.shape
    head_width = len(field_heads[0])
    cell = head_width + 4 + 9 + 2
    cells = np.empty((n, f, cell), dtype=np.uint8)
    cells[:, :, :head_width] = np.frombuffer(b"".join(field_heads), dtype=np.uint8).reshape(f, head_width)
    cells[:, :, head_width:head_width + 4] = np.frombuffer(b"$9\r\n", dtype=np.uint8)
    cells[:, :, head_width + 4:head_width + 13] = encode_double_matrix(values)
    cells[:, :, head_width + 13:] = np.frombuffer(b"\r\n", dtype=np.uint8)
    nan = np.isnan(values)
    keep = np.ones((n, f, cell), dtype=bool)
    if nan.any():
        cells[nan, head_width:head_width + 6] = np.frombuffer(b"$0\r\n\r\n", dtype=np.uint8)
        keep[nan, head_width + 6:] = False
    flat = cells[keep].tobytes()
    ends = np.cumsum(keep.reshape(n, -1).sum(axis=1)).tolist()
    starts = [0, *ends[:-1]]
    return [flat[a:b] for a, b in zip(starts, ends, strict=True)]


def write_redis(
    store: FeatureStore,
    view: FeatureView,
    rows: FeatureRows,
    *,
    progress: Callable[[int], None] | None = None,
    check_newer: bool = True,
    batch_entities: int = 10_000,
    client: Any = None,
) -> WriteStats:
    """HSET rows into Feast's Redis layout: one hash per entity, fields ``mmh3(view:feature)``.

    Args:
        check_newer: first read each entity's stored ``_ts:<view>`` and skip entities whose
            stored value is newer (Feast's rule, except that an equal timestamp is
            rewritten so a same-cutoff correction lands). Needless when nothing newer
            than the window can be stored (the materializer decides).
        batch_entities: commands per network write; replies of one batch are read after
            the next is sent, so Redis and Python work in parallel.
    """
    started = time.perf_counter()
    online = store.config.online_store
    project = store.config.project
    fv_name = view.name
    ts_field = _resp_bulk(internals.redis_timestamp_field(fv_name))
    field_heads = [
        _resp_bulk(internals.redis_feature_field(fv_name, name)) for name in rows.feature_names
    ]
    n_features = len(rows.feature_names)
    head = b"*%d\r\n$4\r\nHSET\r\n" % (2 + 2 * (n_features + 1))
    ttl = online.key_ttl_seconds
    stats = WriteStats(entities=len(rows))
    pipe = _RespPipe(client or internals.feast_redis_client(store))
    try:
        in_flight = 0
        for start in range(0, len(rows), batch_entities):
            stop = min(start + batch_entities, len(rows))
            keys = internals.redis_hash_keys(
                encode_entity_keys(_join_key(view), rows.ids[start:stop]), project
            )
            if check_newer:
                keep = _newer_than_stored(pipe, keys, ts_field, rows.event_ts[start:stop], in_flight)
                in_flight = 0
            else:
                keep = None
            heads = [b"%s$%d\r\n%s\r\n" % (head, len(k), k) for k in keys]
            tails = _by_unique(
                rows.event_ts[start:stop], lambda ts: ts_field + _resp_bulk(timestamp_proto_bytes(ts))
            )
            bodies = _resp_field_runs(field_heads, rows.values[start:stop])
            commands = list(zip(heads, bodies, tails, strict=True))
            if keep is not None:
                commands = [c for c, k in zip(commands, keep.tolist(), strict=True) if k]
            if ttl:
                expire = [
                    (b"*3\r\n$6\r\nEXPIRE\r\n%s" % _resp_bulk(k), _resp_bulk(b"%d" % ttl), b"")
                    for k in keys
                ]
                commands = [part for pair in zip(commands, expire, strict=False) for part in pair]
            payload = b"".join(part for command in commands for part in command)
            written = len(commands) // (2 if ttl else 1)
            if commands:
                pipe.send(payload, len(commands))
            if in_flight:
                pipe.replies(in_flight)
            in_flight = len(commands)
            stats.written += written
            stats.skipped_newer += (stop - start) - written
            if progress:
                progress(stop - start)
        if in_flight:
            pipe.replies(in_flight)
    finally:
        pipe.close()
    stats.seconds = time.perf_counter() - started
    return stats


def _newer_than_stored(
    pipe: _RespPipe, keys: list[bytes], ts_field: bytes, event_ts: np.ndarray, in_flight: int
) -> np.ndarray:
    """Which entities may be written: stored ``_ts`` missing or not newer than ours.

    ``ts_field`` is the RESP bulk string of the ``_ts:<view>`` field; the first
    ``in_flight`` replies belong to earlier writes and are consumed first.
    """
    from google.protobuf.timestamp_pb2 import Timestamp

    command = b"*3\r\n$4\r\nHGET\r\n"
    pipe.send(b"".join(command + _resp_bulk(k) + ts_field for k in keys), len(keys))
    replies = pipe.replies(in_flight + len(keys))[in_flight:]
    ours = event_ts.astype("datetime64[ns]").astype("int64")
    keep = np.ones(len(keys), dtype=bool)
    proto = Timestamp()
    for i, stored in enumerate(replies):
        if stored:
            proto.ParseFromString(stored)
            keep[i] = proto.seconds * 1_000_000_000 + proto.nanos <= ours[i]
    return keep


# ---- any other online store ---------------------------------------------------------


def write_generic(
    store: FeatureStore,
    view: FeatureView,
    rows: FeatureRows,
    *,
    progress: Callable[[int], None] | None = None,
    check_newer: bool = True,
    chunk_entities: int = 10_000,
) -> WriteStats:
    """Write through the store's own ``online_write_batch`` (any Feast online store).

    ``check_newer`` is ignored: each Feast store applies its own rule.
    """
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    started = time.perf_counter()
    provider = internals.feast_provider(store)
    join_key = _join_key(view)
    stats = WriteStats(entities=len(rows))
    for start in range(0, len(rows), chunk_entities):
        stop = min(start + chunk_entities, len(rows))
        batch: list[tuple[Any, dict[str, Any], datetime, datetime | None]] = []
        for i in range(start, stop):
            key = EntityKey(join_keys=[join_key], entity_values=[Value(string_val=rows.ids[i])])
            values = {
                name: (Value() if np.isnan(v) else Value(double_val=float(v)))
                for name, v in zip(rows.feature_names, rows.values[i].tolist(), strict=True)
            }
            batch.append((key, values, _to_aware(rows.event_ts[i]), _to_aware(rows.created_ts[i])))
        provider.online_write_batch(store.config, view, batch, progress=None)
        stats.written += stop - start
        if progress:
            progress(stop - start)
    stats.seconds = time.perf_counter() - started
    return stats
