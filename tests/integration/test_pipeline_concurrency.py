"""Two training runs and a features run at once, on PostgreSQL and Redis.

One home, one PostgreSQL warehouse (a private schema prefix), one Redis online store (a
private Feast project). A first run sets the home up; then two training runs, both given
the same two new source files, and the hourly features DAG start together. Afterwards:

* each file is one batch in ``raw.ingested_files`` and its rows are in ``raw_events``
  exactly once (the "already ingested?" check cannot race);
* every raw batch reached staging (staging by batch id: an ingestion that started first
  and committed last is not skipped);
* every entity of the last exported features has, in Redis, the newest cutoff of that
  export (an older materialization never overwrote a newer one).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest
import yaml

from shopflow.cli.pipeline import EXIT_DEPLOY_PENDING

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.postgres,
              pytest.mark.redis]

#: No model service runs here: a run that promotes ends "deploy pending" (gate 3 waits).
SUCCEEDED = (0, EXIT_DEPLOY_PENDING)
TINY_RUN: dict[str, Any] = {
    "generator": {"events": 6_000, "days": 56, "seed": 3},
    "task": {"horizon": "7d", "lookback": "28d", "cutoff_every": "7d"},
    "training": {"families": ["baseline"], "search_trials": 1, "search_seconds": 5},
    # the extra files come from other generator seeds (other prices, other volumes): the
    # drift and volume gates are not what this test is about
    "quality": {"max_psi": 100.0, "warn_psi": 100.0, "volume_tolerance": 0.99,
                "max_label_rate_shift": 1.0},
}


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOPFLOW_", "AIRFLOW"))}
    env["SHOPFLOW_HOME"] = str(home)
    return env


def _start(home: Path, config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "shopflow.cli", "pipeline", "run", "--config", str(config),
         *args],
        env=_env(home), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        cwd=home.parent,
    )


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=900)
    return proc.returncode, out


def _generate(path: Path, *, seed: int, events: int, home: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "shopflow.cli", "generate", "--events", str(events),
         "--days", "56", "--seed", str(seed), "--out", str(path)],
        env=_env(home), check=True, capture_output=True, timeout=300,
    )
    return path


@pytest.fixture
def concurrent(tmp_path: Path, postgres_url: str, postgres_schema_prefix: str,
               redis_url: str) -> Any:
    project = f"conc_{uuid.uuid4().hex[:8]}"
    config_data = {
        **TINY_RUN,
        "warehouse": {"backend": "postgres", "postgres_url": postgres_url,
                      "schema_prefix": postgres_schema_prefix},
        "features": {"online_store": "redis", "redis_url": redis_url, "project": project},
    }
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(config_data))
    home = tmp_path / "home"
    home.mkdir()
    rc, out = _finish(_start(home, config, "--param", "recommend=false"))
    assert rc in SUCCEEDED, out[-4000:]
    sources = [_generate(tmp_path / f"more-{seed}.parquet", seed=seed, events=6_000, home=home)
               for seed in (21, 22)]
    # both training runs are given both new files: each file must be ingested once
    both = str(tmp_path / "more-*.parquet")
    runs = [
        _start(home, config, "--param", "recommend=false", "--param", f"source_path={both}"),
        _start(home, config, "--param", "recommend=false", "--param", f"source_path={both}"),
        _start(home, config, "--dag", "shopflow_features"),
    ]
    results = [_finish(proc) for proc in runs]
    yield {"home": home, "config": config_data, "results": results, "sources": sources,
           "project": project}
    import redis

    host, port = redis_url.split(":")
    client = redis.Redis(host=host, port=int(port))
    for key in client.scan_iter(match=f"*{project}*".encode(), count=1000):
        client.delete(key)
    client.close()


def _warehouse(run: dict[str, Any], sql: str) -> pd.DataFrame:
    import sqlalchemy as sa

    engine = sa.create_engine(run["config"]["warehouse"]["postgres_url"])
    prefix = run["config"]["warehouse"]["schema_prefix"]
    try:
        with engine.connect() as conn:
            return pd.read_sql_query(sa.text(sql.replace("{p}", prefix)), conn)
    finally:
        engine.dispose()


def test_concurrent_runs_lose_nothing_and_older_never_wins(concurrent: dict[str, Any]
                                                            ) -> None:
    for rc, out in concurrent["results"]:
        assert rc in SUCCEEDED, out[-4000:]

    # raw: each file exactly once, each row exactly once
    files = _warehouse(concurrent, "select source_file, fingerprint, rows_ingested "
                                   "from {p}raw.ingested_files where status = 'ingested'")
    assert files["fingerprint"].is_unique
    for source in concurrent["sources"]:
        assert (files["source_file"] == str(source.resolve())).sum() == 1, files
    counts = _warehouse(concurrent, "select batch_id, count(*) as n, "
                                    "count(distinct (source_file, source_row)) as distinct_rows "
                                    "from {p}raw.raw_events group by batch_id")
    assert (counts["n"] == counts["distinct_rows"]).all()
    assert int(counts["n"].sum()) == int(files["rows_ingested"].sum())

    # staging: no batch left behind
    unstaged = _warehouse(concurrent, """
        select distinct r.batch_id from {p}raw.raw_events as r
        where not exists (select 1 from {p}staging.stg_shop__events as s
                          where s.batch_id = r.batch_id)""")
    assert unstaged.empty, unstaged

    # online store: every entity holds the newest cutoff of the last export
    _assert_online_holds_latest(concurrent)


def _assert_online_holds_latest(run: dict[str, Any]) -> None:
    import redis
    from google.protobuf.timestamp_pb2 import Timestamp

    from shopflow import internals
    from shopflow.features.online_write import encode_entity_keys

    home: Path = run["home"]
    exported = pd.read_parquet(home / "feast" / "data" / "user_features.parquet")
    latest = exported.groupby("user_id")["cutoff_time"].max()
    view = "user_features_fv"
    keys = internals.redis_hash_keys(encode_entity_keys("user_id", list(latest.index)),
                                     run["project"])
    host, port = run["config"]["features"]["redis_url"].split(":")
    client = redis.Redis(host=host, port=int(port))
    try:
        pipe = client.pipeline()
        for key in keys:
            pipe.hget(key, internals.redis_timestamp_field(view))
        stored = pipe.execute()
    finally:
        client.close()
    proto = Timestamp()
    older = []
    for user, value, want in zip(latest.index, stored, latest.tolist(), strict=True):
        assert value, f"user {user} missing from the online store"
        proto.ParseFromString(value)
        got = pd.Timestamp(proto.ToDatetime())
        if got < pd.Timestamp(want):
            older.append((user, got, want))
    assert not older, f"{len(older)} entities hold an older value, e.g. {older[:3]}"

