"""``shopflow forget`` on a real home: every store loses one shopper, nobody else loses a row.

The home is built by the real components (generator, ingestion, dbt, publication, Feast
apply and materialization, a point-in-time training set saved where the pipeline keeps
it), plus a shadow log and a quarantined batch in the formats their writers use. After
``shopflow forget``: the shopper is in no warehouse table, no Parquet file, not in the
online store and not in the shadow log; every other shopper's rows are all still there;
the record names the shopper by pseudonym only; a second ``forget`` removes nothing; and
the next ingest + dbt build (incremental staging) runs and does not bring them back.
Once on DuckDB + SQLite, once on PostgreSQL + Redis.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest
from click.testing import CliRunner

from shopflow.cli import cli
from shopflow.features import (
    apply,
    build_training_set,
    get_online_user_features,
    load_label_entities,
    materialize,
)
from shopflow.features.store import clear_shared_stores
from shopflow.forget import forget_log
from shopflow.privacy import id_hasher
from shopflow.settings import Settings, load_settings
from shopflow.warehouse import connect

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LAYERS = ("raw", "staging", "marts")


def _invoke(*args: str) -> str:
    done = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert done.exit_code == 0, f"{args}: {done.output[-3000:]}"
    return done.output


def _user_tables(settings: Settings) -> dict[str, pd.Series]:
    """Rows per user of every base table with a user_id column (raw, staging, marts)."""
    counts = {}
    with connect(settings) as wh:
        for layer in LAYERS:
            schema = settings.warehouse.schema(layer)
            names = wh.query_df(
                "select c.table_name from information_schema.columns c join "
                "information_schema.tables t on t.table_schema = c.table_schema and "
                "t.table_name = c.table_name where c.table_schema = :s and "
                "c.column_name = 'user_id' and t.table_type = 'BASE TABLE'", {"s": schema}
            )["table_name"]
            for name in names:
                frame = wh.query_df(f"select cast(user_id as text) as user_id from {schema}.{name}")
                counts[f"{schema}.{name}"] = frame["user_id"].value_counts(dropna=False)
    return counts


def _parquet_users(settings: Settings) -> dict[str, pd.Series]:
    """Rows per user of every Parquet file under SHOPFLOW_HOME with a user_id column."""
    import pyarrow.parquet as pq

    counts = {}
    for path in sorted(settings.home_dir.rglob("*.parquet")):
        if "user_id" in pq.read_schema(path).names:
            users = pd.read_parquet(path, columns=["user_id"])["user_id"].astype(str)
            counts[path.relative_to(settings.home_dir).as_posix()] = users.value_counts()
    return counts


def _published(mart: str, settings: Settings) -> str:
    """Where a published mart's file lies, relative to the home: ``data/marts`` points at
    the published set in ``data/mart_versions/<v>/`` (a symlink, which rglob does not
    enter)."""
    path = (settings.home_dir / "data" / "marts" / f"{mart}.parquet").resolve()
    return path.relative_to(settings.home_dir.resolve()).as_posix()


def _without(counts: dict[str, pd.Series], user: str) -> dict[str, pd.Series]:
    return {where: c.drop(user, errors="ignore").sort_index() for where, c in counts.items()}


def _build_home(settings: Settings, source: Path, config: Path) -> None:
    """Raw events to marts, published files, Feast (offline + online) and a training set."""
    _invoke("generate", "--events", "6000", "--days", "45", "--seed", "3", "--out", str(source),
            "--no-progress")
    _invoke("ingest", "--path", str(source), "--config", str(config))
    _invoke("transform", "--config", str(config))
    from shopflow.transform.publish import publish_marts

    publish_marts(settings)
    apply(settings)
    materialize(settings)
    frame = build_training_set(settings, load_label_entities(settings))
    runs = settings.reports_dir / "runs" / "manual__privacy"
    runs.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(runs / "training_set-propensity_v2.parquet", index=False)


def _add_logs_and_quarantine(settings: Settings, target: str, other: str) -> None:
    """A shadow log day file (as ShadowScorer writes it) and a quarantined batch's rows."""
    hash_id = id_hasher(settings)
    shadow = settings.reports_dir / "shadow"
    shadow.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"at": "2024-01-01T00:00:00+00:00", "user": hash_id(u),
                         "known_user": True, "champion_version": "a", "champion": 0.1,
                         "challenger_version": "b", "challenger": 0.2})
             for u in (target, other, target)]
    (shadow / "shadow-20240101.jsonl").write_text("\n".join(lines) + "\n")
    with connect(settings) as wh:
        rows = wh.query_df(
            f"select * from {wh.table('raw', 'raw_events')} where user_id in (:a, :b)",
            {"a": target, "b": other})
    folder = settings.quarantine_dir / "b_blocked"
    folder.mkdir(parents=True, exist_ok=True)
    rows.to_parquet(folder / "rows.parquet", index=False)


def _pick_users(settings: Settings) -> tuple[str, str]:
    with connect(settings) as wh:
        users = wh.query_df(
            f"select user_id, count(*) as n from {wh.table('marts', 'user_features')} "
            "group by user_id order by n desc, user_id limit 2")["user_id"].astype(str)
    return users.iloc[0], users.iloc[1]


def _forget_everywhere(settings: Settings, config: Path, tmp_path: Path) -> None:
    source = tmp_path / "source" / "events.parquet"
    _build_home(settings, source, config)
    target, other = _pick_users(settings)
    _add_logs_and_quarantine(settings, target, other)
    token = id_hasher(settings)(target)

    tables_before, files_before = _user_tables(settings), _parquet_users(settings)
    assert all(target in tables_before[t].index
               for t in (f"{settings.warehouse.schema('raw')}.raw_events",
                         f"{settings.warehouse.schema('staging')}.stg_shop__events",
                         f"{settings.warehouse.schema('marts')}.user_features"))
    for path in (_published("user_features", settings), "feast/data/user_features.parquet",
                 "reports/runs/manual__privacy/training_set-propensity_v2.parquet",
                 "quarantine/b_blocked/rows.parquet"):
        assert target in files_before[path].index, path
    online = get_online_user_features(settings, [target, other])
    assert online["known"].tolist() == [True, True]
    clear_shared_stores()

    output = _invoke("forget", target, "--config", str(config))
    assert token in output

    # every store lost the shopper, and only the shopper
    tables_after, files_after = _user_tables(settings), _parquet_users(settings)
    assert set(tables_after) == set(tables_before)
    assert not any(target in c.index for c in tables_after.values())
    for where, counts in _without(tables_before, target).items():
        pd.testing.assert_series_equal(tables_after[where].sort_index(), counts, obj=where)
    assert set(files_after) == set(files_before)
    assert not any(target in c.index for c in files_after.values())
    for where, counts in _without(files_before, target).items():
        pd.testing.assert_series_equal(files_after[where].sort_index(), counts, obj=where)
    assert target in pd.read_parquet(source)["user_id"].astype(str).tolist()  # input untouched
    online = get_online_user_features(settings, [target, other])
    assert online["known"].tolist() == [False, True]
    clear_shared_stores()
    shadow = [json.loads(line)["user"] for line in
              (settings.reports_dir / "shadow" / "shadow-20240101.jsonl").read_text().splitlines()]
    assert shadow == [id_hasher(settings)(other)]

    # the record: pseudonym and counts, never the raw id
    records = [json.loads(line) for line in forget_log(settings).read_text().splitlines()]
    assert len(records) == 1 and records[0]["user"] == token
    assert f'"{target}"' not in forget_log(settings).read_text()
    removed: dict[str, Any] = records[0]["removed"]
    assert removed["shadow_log"] == {"reports/shadow/shadow-20240101.jsonl": 2}
    published = _published("user_features", settings)
    assert removed["files"][published] == files_before[published][target]
    assert sum(removed["online_store"].values()) > 0
    raw_table = f"{settings.warehouse.schema('raw')}.raw_events"
    assert removed["warehouse"][raw_table] == tables_before[raw_table][target]

    # idempotent: a second forget removes nothing and says so
    _invoke("forget", target, "--config", str(config))
    again = json.loads(forget_log(settings).read_text().splitlines()[-1])
    assert again["total"] == 0 and again["user"] == token

    # the next run: same file skipped, a new batch ingested, dbt's incremental staging
    # builds, and the shopper does not come back
    newer = tmp_path / "source" / "events-2.parquet"
    _invoke("generate", "--events", "2000", "--days", "45", "--seed", "4", "--out", str(newer),
            "--no-progress")
    fresh = pd.read_parquet(newer)
    fresh = fresh[fresh["user_id"].astype(str) != target]
    fresh.to_parquet(newer, index=False)
    _invoke("ingest", "--path", str(tmp_path / "source" / "*.parquet"), "--config", str(config))
    _invoke("transform", "--config", str(config))
    tables_next = _user_tables(settings)
    assert not any(target in c.index for c in tables_next.values())
    staging = f"{settings.warehouse.schema('staging')}.stg_shop__events"
    assert tables_next[staging].sum() > tables_after[staging].sum()
    assert tables_next[staging].get(other, 0) >= tables_after[staging][other]


def test_forget_on_duckdb_and_sqlite(settings: Settings, tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("{}\n")
    _forget_everywhere(settings, config, tmp_path)


@pytest.fixture
def shared_backends(postgres_schema_prefix: str, postgres_url: str, redis_url: str,
                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """PostgreSQL warehouse (unique schema prefix) and Redis online store (unique project)."""
    project = f"t{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("SHOPFLOW_WAREHOUSE__BACKEND", "postgres")
    monkeypatch.setenv("SHOPFLOW_WAREHOUSE__POSTGRES_URL", postgres_url)
    monkeypatch.setenv("SHOPFLOW_WAREHOUSE__SCHEMA_PREFIX", postgres_schema_prefix)
    monkeypatch.setenv("SHOPFLOW_FEATURES__ONLINE_STORE", "redis")
    monkeypatch.setenv("SHOPFLOW_FEATURES__REDIS_URL", redis_url)
    monkeypatch.setenv("SHOPFLOW_FEATURES__PROJECT", project)
    settings = load_settings()
    settings.ensure_dirs()
    yield settings
    clear_shared_stores()
    import redis

    host, port = redis_url.split(":")
    client = redis.Redis(host=host, port=int(port))
    keys = list(client.scan_iter(match=b"*" + project.encode(), count=5000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.mark.postgres
@pytest.mark.redis
def test_forget_on_postgres_and_redis(shared_backends: Settings, tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("{}\n")
    _forget_everywhere(shared_backends, config, tmp_path)
