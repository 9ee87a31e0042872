"""Feature store: materialization throughput and online read latency, beside their floors.

For each online store (SQLite and Redis):

- **materialize**: ``shopflow.features.materialize`` of N entity rows (the default task's
  user features, ``USER_TABLE``: 68 of them today;
  default 1M) from the offline Parquet into the online store;
- **Feast stock**: ``FeatureStore.materialize`` (the baseline) on a smaller slice;
- **raw floor**: the same encoded rows written straight into the store with no Feast
  and no encoding in the timed part (SQLite ``executemany`` into Feast's table layout;
  Redis pipelined ``HSET`` bytes on one socket);
- **online reads**: p50/p99 of ``get_online_user_features`` (a frame) and
  ``get_online_matrix`` (the service's hot path: a float matrix) for 1 and 100 random known
  users, Feast's stock ``get_online_features`` beside it, and the raw floor (a direct
  SQLite ``SELECT`` / a Redis pipelined ``HMGET`` of the same fields).

Rates are entity rows per second (one row = one user's features); wall time, with this
process's CPU seconds alongside (the machine may be shared). Writes JSON to
``SHOPFLOW_HOME/bench/features.json``.

    python -m benchmarks.bench_features                          # 1M rows, both stores
    python -m benchmarks.bench_features --rows 200000 --stores redis --stock-rows 5000
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sqlite3
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.machine import print_table, write_json


def _settings(home: Path, store: str, project: str, redis_url: str) -> Any:
    from shopflow.settings import load_settings

    settings = load_settings(
        home=home, features={"online_store": store, "project": project, "redis_url": redis_url}
    )
    settings.ensure_dirs()
    return settings


def _prepare(settings: Any, rows: int, seed: int) -> Any:
    """Random marts (one row per user), exported and applied; returns the FeatureStore."""
    from shopflow.features import apply, get_store
    from shopflow.features.synthetic import write_random_marts

    write_random_marts(settings, users=rows, items=10, seed=seed)
    store = get_store(settings)
    apply(settings, store=store)
    return store


def _timed(fn: Any) -> tuple[float, float, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def _latest_rows(settings: Any) -> list[Any]:
    from shopflow.features.materialization import read_latest_rows
    from shopflow.features.schema import USER_TABLE

    _, batches = read_latest_rows(settings, USER_TABLE, start=None, end=datetime.now(UTC))
    return list(batches)


def _floor_sqlite(settings: Any, store: Any) -> tuple[float, int]:
    """Seconds spent in ``executemany`` alone, writing pre-encoded rows to a fresh table."""
    from shopflow.features import online_write as ow

    path = settings.feast_dir / "floor.db"
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE t (entity_key BLOB, feature_name TEXT, value BLOB, value_text TEXT, "
        "vector_value BLOB, event_ts timestamp, created_ts timestamp, "
        "PRIMARY KEY(entity_key, feature_name))"
    )
    conn.execute("CREATE INDEX t_ek ON t (entity_key)")
    seconds, count = 0.0, 0
    for rows in _latest_rows(settings):
        for start in range(0, len(rows), 20_000):
            stop = min(start + 20_000, len(rows))
            keys = ow.encode_entity_keys("user_id", rows.ids[start:stop])
            values = rows.values[start:stop]
            encoded = ow.encode_double_values(values)
            texts = ow._value_texts(values)
            ts = 1_700_000_000
            width = len(rows.feature_names)
            tuples = [
                (k, name, encoded[i * width + j], texts[i * width + j], ts, ts)
                for i, k in enumerate(keys)
                for j, name in enumerate(rows.feature_names)
            ]
            began = time.perf_counter()
            with conn:
                conn.executemany("INSERT INTO t (entity_key, feature_name, value, value_text, event_ts, created_ts) VALUES (?,?,?,?,?,?)", tuples)
            seconds += time.perf_counter() - began
            count += stop - start
    conn.close()
    path.unlink(missing_ok=True)
    return seconds, count


def _floor_redis(settings: Any, store: Any, project: str) -> tuple[float, int]:
    """Seconds spent sending pre-built HSET bytes and reading the replies, nothing else."""
    from shopflow import internals
    from shopflow.features import online_write as ow

    client = internals.feast_redis_client(store)
    heads = None
    seconds, count = 0.0, 0
    pipe = ow._RespPipe(client)
    try:
        for rows in _latest_rows(settings):
            if heads is None:
                heads = [ow._resp_bulk(internals.redis_feature_field("user_features_fv", n))
                         for n in rows.feature_names]
            for start in range(0, len(rows), 10_000):
                stop = min(start + 10_000, len(rows))
                keys = internals.redis_hash_keys(
                    ow.encode_entity_keys("user_id", rows.ids[start:stop]), project)
                bodies = ow._resp_field_runs(heads, rows.values[start:stop])
                head = b"*%d\r\n$4\r\nHSET\r\n" % (2 + 2 * (len(rows.feature_names) + 1))
                tail = ow._resp_bulk(internals.redis_timestamp_field("user_features_fv")) + ow._resp_bulk(
                    ow.timestamp_proto_bytes(rows.event_ts[start])
                )
                payload = b"".join(
                    head + ow._resp_bulk(k) + b + tail for k, b in zip(keys, bodies, strict=True)
                )
                began = time.perf_counter()
                pipe.send(payload, len(keys))
                pipe.replies(len(keys))
                seconds += time.perf_counter() - began
                count += len(keys)
    finally:
        pipe.close()
    return seconds, count


def _percentiles(fn: Any, repeats: int) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    p50, p99 = np.percentile(times, [50, 99])
    return float(p50 * 1000), float(p99 * 1000)


def _reads(settings: Any, store: Any, rows: int, repeats: int, seed: int) -> list[dict[str, Any]]:
    from shopflow import internals
    from shopflow.features import get_online_user_features
    from shopflow.features import online_write as ow
    from shopflow.features.online import get_online_matrix
    from shopflow.features.schema import USER_TABLE

    rng = np.random.default_rng(seed)
    ids = [f"u{i}" for i in range(rows)]
    service_name = settings.features.feature_service  # the default task's, over USER_TABLE
    service = store.get_feature_service(service_name, allow_cache=True)
    names = USER_TABLE.feature_names
    if settings.features.online_store == "sqlite":
        view = store.get_feature_view("user_features_fv")
        conn = sqlite3.connect(settings.feast_dir / "online.db")
        table = internals.sqlite_online_table(store.project, view, versioned=False)

        def raw(batch: list[str]) -> Any:
            keys = ow.encode_entity_keys("user_id", batch)
            return conn.execute(
                f'SELECT entity_key, feature_name, value, event_ts FROM "{table}" '
                f"WHERE entity_key IN ({','.join('?' * len(keys))})",
                keys,
            ).fetchall()
    else:
        client = internals.feast_redis_client(store)
        fields = [internals.redis_feature_field("user_features_fv", n) for n in names]
        fields.append(internals.redis_timestamp_field("user_features_fv"))

        def raw(batch: list[str]) -> Any:
            pipe = client.pipeline(transaction=False)
            keys = internals.redis_hash_keys(ow.encode_entity_keys("user_id", batch), store.project)
            for key in keys:
                pipe.hmget(key, fields)
            return pipe.execute()

    def pick(n: int) -> list[str]:
        return [ids[i] for i in rng.integers(0, rows, size=n)]

    out = []
    for batch in (1, 100):
        # Warm every path once (registry cache, connections).
        get_online_user_features(settings, pick(batch), store=store)
        raw(pick(batch))
        ours = _percentiles(lambda b=batch: get_online_user_features(settings, pick(b), store=store), repeats)
        served = _percentiles(
            lambda b=batch: get_online_matrix(settings, USER_TABLE, pick(b),
                                              feature_service=service_name,
                                              feature_names=names, store=store),
            repeats,
        )
        stock = _percentiles(
            lambda b=batch: store.get_online_features(
                features=service, entity_rows=[{"user_id": i} for i in pick(b)]
            ).to_dict(),
            repeats,
        )
        floor = _percentiles(lambda b=batch: raw(pick(b)), repeats)
        for label, (p50, p99) in (("get_online_user_features", ours),
                                  ("get_online_matrix (serving path)", served),
                                  ("feast get_online_features", stock), ("raw floor", floor)):
            out.append({"users": batch, "path": label, "p50_ms": p50, "p99_ms": p99})
    return out


def _redis_cpu(client: Any) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _cleanup_redis(redis_url: str, projects: list[str]) -> None:
    import redis

    host, port = redis_url.split(":")
    client = redis.Redis(host=host, port=int(port))
    for project in projects:
        batch = []
        for key in client.scan_iter(match=b"*" + project.encode(), count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                client.unlink(*batch)
                batch = []
        if batch:
            client.unlink(*batch)
    client.close()


def bench_store(kind: str, *, rows: int, stock_rows: int, repeats: int, work: Path, redis_url: str) -> dict[str, Any]:
    """Materialization and read numbers for one online store."""
    from shopflow.features import materialize
    from shopflow.features.schema import USER_TABLE

    tag = uuid.uuid4().hex[:6]
    projects = [f"bench{tag}", f"bench{tag}s", f"bench{tag}f"]
    result: dict[str, Any] = {"store": kind, "rows": rows, "stock_rows": stock_rows}
    try:
        settings = _settings(work / kind, kind, projects[0], redis_url)
        store = _prepare(settings, rows, seed=1)
        redis_client = None
        if kind == "redis":
            from shopflow.internals import feast_redis_client

            redis_client = feast_redis_client(store)
            server_cpu = _redis_cpu(redis_client)
        wall, cpu, done = _timed(lambda: materialize(settings, store=store, tables=[USER_TABLE]))
        view = done.by_view("user_features_fv")
        result["shopflow"] = {"seconds": wall, "cpu_seconds": cpu, "rows": view.entities, "rows_per_s": view.entities / wall}
        if redis_client is not None:
            result["shopflow"]["redis_server_cpu_seconds"] = _redis_cpu(redis_client) - server_cpu

        stock_settings = _settings(work / f"{kind}-stock", kind, projects[1], redis_url)
        stock_store = _prepare(stock_settings, stock_rows, seed=2)
        wall, cpu, _ = _timed(
            lambda: stock_store.materialize(
                datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC), feature_views=["user_features_fv"]
            )
        )
        result["feast_stock"] = {"seconds": wall, "cpu_seconds": cpu, "rows": stock_rows, "rows_per_s": stock_rows / wall}

        if kind == "sqlite":
            seconds, count = _floor_sqlite(settings, store)
        else:
            seconds, count = _floor_redis(settings, store, projects[2])
        result["raw_floor"] = {"seconds": seconds, "rows": count, "rows_per_s": count / seconds}
        result["reads"] = _reads(settings, store, rows, repeats, seed=3)
    finally:
        if kind == "redis":
            _cleanup_redis(redis_url, projects)
        shutil.rmtree(work / kind, ignore_errors=True)
        shutil.rmtree(work / f"{kind}-stock", ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="entity rows to materialize (one per user)")
    parser.add_argument("--stock-rows", type=int, default=20_000, help="rows for Feast's stock materialize")
    parser.add_argument("--stores", nargs="+", choices=["sqlite", "redis"], default=["sqlite", "redis"])
    parser.add_argument("--repeats", type=int, default=300, help="online reads per percentile")
    parser.add_argument("--redis-url", default="127.0.0.1:6379")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from shopflow.settings import load_settings

    home = load_settings().home_dir
    work = home / "bench" / "features-work"
    load_avg_before = Path("/proc/loadavg").read_text().split()[:3]
    results = [
        bench_store(kind, rows=args.rows, stock_rows=args.stock_rows, repeats=args.repeats, work=work, redis_url=args.redis_url)
        for kind in args.stores
    ]
    shutil.rmtree(work, ignore_errors=True)
    load_avg_after = Path("/proc/loadavg").read_text().split()[:3]

    table = []
    for r in results:
        table.append([r["store"], "shopflow materialize", r["shopflow"]["rows"], r["shopflow"]["seconds"], r["shopflow"]["rows_per_s"], r["shopflow"]["cpu_seconds"]])
        table.append([r["store"], "Feast stock materialize", r["feast_stock"]["rows"], r["feast_stock"]["seconds"], r["feast_stock"]["rows_per_s"], r["feast_stock"]["cpu_seconds"]])
        table.append([r["store"], "raw bulk write (floor)", r["raw_floor"]["rows"], r["raw_floor"]["seconds"], r["raw_floor"]["rows_per_s"], "-"])
    from shopflow.features.schema import USER_TABLE

    print_table(f"Materialization (entity rows of {len(USER_TABLE.catalogue)} features)", ["store", "path", "rows", "seconds", "rows/s", "CPU s (this process)"], table)
    reads = [[r["store"], x["users"], x["path"], x["p50_ms"], x["p99_ms"]] for r in results for x in r["reads"]]
    print_table(f"Online reads ({args.repeats} requests each)", ["store", "users", "path", "p50 ms", "p99 ms"], reads)
    print(f"load average before {load_avg_before}, after {load_avg_after}")
    path = write_json(home / "bench", "features", {"args": vars(args), "load_average": {"before": load_avg_before, "after": load_avg_after}, "results": results})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
