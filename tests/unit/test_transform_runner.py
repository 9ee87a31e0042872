"""shopflow.transform.dbt_runner without running dbt: vars, env, args, results, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from shopflow.settings import Settings, load_settings
from shopflow.transform import DbtError, DbtRunResult, NodeResult, dbt_args, dbt_env, dbt_vars
from shopflow.transform.dbt_runner import _environ, _failure_message, dbt_project_dir


def test_vars_are_the_task_durations_in_seconds() -> None:
    settings = load_settings(
        task={"horizon": "14d", "lookback": "12h", "cutoff_every": "15m"},
        warehouse={"schema_prefix": "t1_"},
    )
    assert dbt_vars(settings) == {
        "schema_prefix": "t1_",
        # the dedup key (quality.duplicate_key) travels as a dbt var since item 10 of
        # "Models that win on real shop data"; the default is every event column
        "event_key": ["user_id", "item_id", "event_type", "event_time", "price", "quantity",
                      "order_id", "category_id"],
        "horizon_seconds": 14 * 86400,
        "lookback_seconds": 12 * 3600,
        "cutoff_every_seconds": 15 * 60,
        # the horizon's ladder (3d, 14d) is longer than the lookback: only the lookback is left
        "feature_window_seconds": [12 * 3600],
        # leakage tests recount every shopper up to 50,000, then a tenth of them
        "leakage_sample_above_users": 50_000,
        "leakage_sample_fraction": 0.1,
    }


def test_vars_reject_a_duration_below_one_second() -> None:
    settings = load_settings(task={"cutoff_every": "0.4s"})
    with pytest.raises(DbtError, match="task.cutoff_every"):
        dbt_vars(settings)


def test_duckdb_env_points_at_the_warehouse_in_home(settings: Settings) -> None:
    env = dbt_env(settings)
    assert env["DBT_SHOPFLOW_TARGET"] == "duckdb"
    assert env["DBT_SHOPFLOW_DUCKDB_PATH"] == str(settings.warehouse_path)
    assert not any(key.startswith("DBT_SHOPFLOW_PG") for key in env)


def test_postgres_env_splits_the_url_and_keeps_the_password_secret() -> None:
    settings = load_settings(
        warehouse={"backend": "postgres", "postgres_url": "postgresql://shop:p%40ss@db.local:6543/wh"}
    )
    env = dbt_env(settings)
    assert env["DBT_SHOPFLOW_TARGET"] == "postgres"
    assert (env["DBT_SHOPFLOW_PG_HOST"], env["DBT_SHOPFLOW_PG_PORT"]) == ("db.local", "6543")
    assert (env["DBT_SHOPFLOW_PG_USER"], env["DBT_SHOPFLOW_PG_DBNAME"]) == ("shop", "wh")
    # dbt scrubs DBT_ENV_SECRET_* values from its logs; the password lives nowhere else
    assert env["DBT_ENV_SECRET_PG_PASSWORD"] == "p@ss"
    assert "p@ss" not in json.dumps({k: v for k, v in env.items() if "SECRET" not in k})


@pytest.mark.parametrize(
    ("url", "problem"),
    [("mysql://u@h/db", "postgresql://"), ("postgresql://u@h:5432", "names no database")],
)
def test_postgres_env_rejects_a_bad_url(url: str, problem: str) -> None:
    settings = load_settings(warehouse={"backend": "postgres", "postgres_url": url})
    with pytest.raises(DbtError, match=problem):
        dbt_env(settings)


def test_profiles_hold_no_connection_values() -> None:
    profiles = (dbt_project_dir() / "profiles.yml").read_text()
    for key in ("path", "host", "port", "user", "password", "dbname"):
        lines = [line for line in profiles.splitlines() if line.strip().startswith(f"{key}:")]
        assert lines and all("env_var(" in line for line in lines), key
    assert "DBT_ENV_SECRET_PG_PASSWORD" in profiles


def test_args_keep_dbt_state_in_home_and_pass_vars(settings: Settings) -> None:
    args = dbt_args(settings, command="build", select="+user_features item_features")
    assert args[0] == "build"
    target = Path(args[args.index("--target-path") + 1])
    logs = Path(args[args.index("--log-path") + 1])
    assert target.parent == logs.parent == settings.home_dir / "dbt"
    assert not target.is_relative_to(dbt_project_dir())
    assert json.loads(args[args.index("--vars") + 1]) == dbt_vars(settings)
    select_at = args.index("--select")
    assert args[select_at + 1 : select_at + 3] == ["+user_features", "item_features"]
    assert "--full-refresh" not in args


def test_full_refresh_only_where_dbt_accepts_it(settings: Settings) -> None:
    assert dbt_args(settings, command="run", full_refresh=True)[-1] == "--full-refresh"
    with pytest.raises(DbtError, match="does not apply to dbt test"):
        dbt_args(settings, command="test", full_refresh=True)


def test_environ_sets_then_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPFLOW_T_KEEP", "old")
    monkeypatch.delenv("SHOPFLOW_T_NEW", raising=False)
    with _environ({"SHOPFLOW_T_KEEP": "new", "SHOPFLOW_T_NEW": "x"}):
        assert (os.environ["SHOPFLOW_T_KEEP"], os.environ["SHOPFLOW_T_NEW"]) == ("new", "x")
    assert os.environ["SHOPFLOW_T_KEEP"] == "old"
    assert "SHOPFLOW_T_NEW" not in os.environ


def _node(name: str, status: str, message: str | None = None) -> NodeResult:
    kind = "model" if status in {"success", "error", "skipped"} else "test"
    return NodeResult(f"{kind}.shopflow.{name}", name, kind, status, 0.5, message)


def test_run_result_counts_and_finds_nodes() -> None:
    result = DbtRunResult(
        command="build",
        success=False,
        elapsed_seconds=2.0,
        nodes=[
            _node("stg_shop__events", "success"),
            _node("unique_event_id", "pass"),
            _node("accepted_values_event_type", "fail", "Got 1 result"),
            _node("user_features", "skipped"),
            _node("price_non_negative", "warn"),
        ],
    )
    assert result.status_counts() == {"success": 1, "pass": 1, "fail": 1, "skipped": 1, "warn": 1}
    assert [node.name for node in result.failures] == ["accepted_values_event_type", "user_features"]
    assert result.node("model.shopflow.user_features").status == "skipped"
    with pytest.raises(KeyError, match="no node named 'nope'"):
        result.node("nope")


def test_failure_message_names_broken_nodes_and_counts_skipped(settings: Settings) -> None:
    failures = [
        _node("accepted_values_event_type", "fail", "Got 1 result, configured to fail if != 0"),
        _node("stg_shop__events", "error", 'Catalog Error: Table "raw_events" does not exist'),
        _node("user_features", "skipped"),
    ]
    message = _failure_message("build", failures, settings)
    assert "2 node(s) errored or failed" in message
    assert "fail: test.shopflow.accepted_values_event_type: Got 1 result" in message
    assert "run `shopflow ingest` first" in message
    assert "(1 downstream node(s) skipped)" in message
