"""Registering the definitions: Python API, `feast apply` in feature_repo/, the CLI, and a
PostgreSQL registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from shopflow.cli import cli
from shopflow.features import apply, build_training_set, get_store, materialize
from shopflow.features.definitions import build_definitions
from shopflow.features.schema import ITEM_TABLE, USER_TABLE
from shopflow.features.store import feast_env
from shopflow.features.synthetic import feature_row, write_mart
from shopflow.settings import Settings, load_settings

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2] / "feature_repo"
FIRST = USER_TABLE.feature_names[0]


def _marts(settings: Settings) -> None:
    write_mart(
        settings,
        USER_TABLE,
        [feature_row(USER_TABLE, "u1", "2024-01-07", 1.0), feature_row(USER_TABLE, "u2", "2024-01-14", 2.0)],
    )
    write_mart(settings, ITEM_TABLE, [feature_row(ITEM_TABLE, "i1", "2024-01-07", 3.0)])


def _registered(settings: Settings) -> dict[str, object]:
    store = get_store(settings)
    return {
        "entities": sorted((e.name, e.join_key, e.value_type.name) for e in store.list_entities()),
        "views": sorted(
            (v.name, v.ttl, tuple(f.name for f in v.features), v.batch_source.path, tuple(sorted(v.tags.items())))
            for v in store.list_feature_views()
        ),
        "services": sorted(
            (s.name, tuple(p.name for p in s.feature_view_projections)) for s in store.list_feature_services()
        ),
    }


@pytest.mark.slow
def test_feast_cli_in_feature_repo_registers_the_same_objects(settings: Settings, tmp_path: Path) -> None:
    """`feast apply` in feature_repo/ (env from `shopflow features env`) == the Python API."""
    other = load_settings(home=tmp_path / "python_api")
    other.ensure_dirs()
    apply(other)
    env = {**os.environ, **feast_env(settings)}
    feast = Path(sys.executable).with_name("feast")
    done = subprocess.run(
        [str(feast), "-c", str(REPO), "apply"], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    via_cli, via_python = _registered(settings), _registered(other)
    # Same objects; only the source paths differ (each lives in its own SHOPFLOW_HOME).
    for side, home in ((via_cli, settings.home_dir), (via_python, other.home_dir)):
        side["views"] = [(*v[:3], v[3].replace(str(home), "HOME"), v[4]) for v in side["views"]]
    assert via_cli == via_python
    assert {name for name, *_ in via_cli["services"]} == {"propensity_v2", "item_ranking_v1",
                                                          "propensity_v1"}


def test_cli_apply_materialize_get(settings: Settings) -> None:
    _marts(settings)
    runner = CliRunner()
    applied = runner.invoke(cli, ["features", "apply"], catch_exceptions=False)
    assert applied.exit_code == 0, applied.output
    assert "exported user_features: 2 rows" in applied.output
    done = runner.invoke(cli, ["features", "materialize", "--json"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    views = {v["view"]: v for v in json.loads(done.output)["views"]}
    assert views["user_features_fv"]["entities"] == 2
    assert views["user_features_fv"]["watermark"].startswith("2024-01-14")
    got = runner.invoke(
        cli, ["features", "get", "--user-id", "u2", "--user-id", "ghost", "--item-id", "i1", "--json"],
        catch_exceptions=False,
    )
    assert got.exit_code == 0, got.output
    body = json.loads(got.output)
    assert [(u["user_id"], u["known"], u[FIRST]) for u in body["users"]] == [("u2", True, 2.0), ("ghost", False, None)]
    assert body["items"][0]["known"] is True
    table = runner.invoke(cli, ["features", "get", "--user-id", "u1"], catch_exceptions=False)
    assert table.exit_code == 0 and "recency_days" in table.output


def test_cli_errors_are_clean(settings: Settings) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["features", "get"]).exit_code == 2
    before_apply = runner.invoke(cli, ["features", "materialize"])
    assert before_apply.exit_code == 1
    assert "shopflow features apply" in before_apply.output
    bad = runner.invoke(cli, ["features", "materialize", "--start", "yesterday"])
    assert bad.exit_code == 2 and "--start" in bad.output
    env = runner.invoke(cli, ["features", "env"])
    assert env.exit_code == 0 and "export SHOPFLOW_FEAST_REGISTRY_URL=" in env.output


def test_apply_is_idempotent(settings: Settings) -> None:
    _marts(settings)
    result = apply(settings)
    assert "propensity_v2" in result.objects
    assert [(t["table"], t["rows_written"]) for t in result.exported] == [("user_features", 2), ("item_features", 1)]
    first = _registered(settings)
    apply(settings)
    assert _registered(settings) == first


@pytest.mark.postgres
def test_postgres_registry_is_shared_between_stores(postgres_url: str, postgres_schema_prefix: str, tmp_path: Path) -> None:
    """Two processes' stores (e.g. parallel Airflow tasks) share one PostgreSQL registry."""
    import sqlalchemy as sa

    schema = f"{postgres_schema_prefix}feast"
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'create schema "{schema}"'))
    engine.dispose()
    registry = f"{postgres_url}?options=-csearch_path%3D{schema}"
    project = f"t{uuid.uuid4().hex[:8]}"
    writer = load_settings(home=tmp_path / "a", features={"registry_url": registry, "project": project})
    reader = load_settings(home=tmp_path / "b", features={"registry_url": registry, "project": project})
    writer.ensure_dirs()
    _marts(writer)
    apply(writer)
    materialize(writer)
    # The other "task" sees the definitions and the watermark without applying anything.
    other = get_store(reader)
    assert {v.name for v in other.list_feature_views()} == {
        "user_features_fv", "item_features_fv", "user_features_v1_fv"}
    assert other.get_feature_view("user_features_fv").most_recent_end_time is not None
    import pandas as pd

    frame = build_training_set(
        writer, pd.DataFrame({"user_id": ["u1", "u2"], "event_timestamp": pd.to_datetime(["2024-01-08", "2024-01-08"])})
    )
    assert frame[FIRST].tolist()[0] == 1.0 and pd.isna(frame[FIRST].tolist()[1])
    with sa.create_engine(postgres_url).connect() as conn:
        tables = conn.execute(
            sa.text("select table_name from information_schema.tables where table_schema = :s"), {"s": schema}
        ).scalars().all()
    assert "feature_views" in tables
    assert build_definitions(writer).user_features_fv.name in {v.name for v in other.list_feature_views()}
