"""The local Airflow's environment, login and queue notes, without starting Airflow."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest

from shopflow.orchestration.runtime import queue_wait
from shopflow.orchestration.stack import (
    async_metadata_url,
    component_environment,
    generate_login,
    metadata_url_of,
    stack_environment,
    write_passwords_file,
)
from shopflow.settings import load_settings

if TYPE_CHECKING:
    from shopflow.settings import Settings


@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql+psycopg2://postgres@127.0.0.1:5432/airflow",
     "postgresql+psycopg://postgres@127.0.0.1:5432/airflow"),
    ("postgresql://u:p@db/airflow", "postgresql+psycopg://u:p@db/airflow"),
    ("sqlite:////tmp/airflow.db", None),
])
def test_async_url_uses_psycopg_not_asyncpg(url: str, expected: str | None) -> None:
    assert async_metadata_url(url) == expected


def test_generated_logins_differ_and_the_file_is_private(tmp_path: Path) -> None:
    first, second = generate_login("admin"), generate_login("admin")
    assert first.password != second.password and len(first.password) >= 16
    path = write_passwords_file(tmp_path / "af" / "passwords.json", first)
    assert json.loads(path.read_text()) == {"admin": first.password}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_every_component_gets_one_consistent_environment(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")  # the caller's: dropped
    login = generate_login("admin")
    env = stack_environment(settings, login=login, passwords_file=tmp_path / "p.json",
                            port=18080)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert int(env["AIRFLOW__CORE__PARALLELISM"]) >= 4
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == metadata_url_of(settings)
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("sqlite:///")
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC" not in env
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18080/execution/"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"
    assert env["SHOPFLOW_HOME"] == str(settings.home_dir)
    assert env["AIRFLOW__CORE__DAGS_FOLDER"].endswith("dags")
    # the api-server alone loads the Shopflow view from the repository's plugins/
    assert "AIRFLOW__CORE__PLUGINS_FOLDER" not in env
    api = component_environment(env, "api-server")
    assert (Path(api["AIRFLOW__CORE__PLUGINS_FOLDER"]) / "shopflow_ui.py").is_file()
    assert component_environment(env, "scheduler") == env
    assert login.password not in json.dumps(env)  # only in the 0600 file


def test_postgres_metadata_gets_its_async_url(shopflow_home: Path, tmp_path: Path) -> None:
    url = "postgresql+psycopg2://postgres@127.0.0.1:5432/airflow_x"
    settings = load_settings(airflow={"metadata_url": url})
    env = stack_environment(settings, login=generate_login("admin"),
                            passwords_file=tmp_path / "p.json", port=8080)
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == url
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"].startswith("postgresql+psycopg://")


def test_parallelism_below_four_is_refused(shopflow_home: Path) -> None:
    from shopflow.settings import ConfigError

    with pytest.raises((ConfigError, ValueError)):
        load_settings(airflow={"parallelism": 2})


NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _run(run_type: str, waited: float) -> SimpleNamespace:
    return SimpleNamespace(run_type=run_type, run_after=NOW,
                           start_date=NOW + timedelta(seconds=waited))


def test_a_manual_run_that_waited_says_it_was_queued() -> None:
    note = queue_wait(_run("manual", 600), max_active_runs=1)
    assert note is not None and note["waited_s"] == 600
    assert "queued 600s behind an earlier run" in note["note"]
    assert "max_active_runs=1" in note["note"]


@pytest.mark.parametrize(("run_type", "waited"), [
    ("manual", 3),  # the scheduler's usual start-up latency
    ("scheduled", 36_000),  # run_after is the cron time, not when anyone asked
    ("manual", -1),
])
def test_no_queue_note_without_a_wait_behind_another_run(run_type: str, waited: float) -> None:
    assert queue_wait(_run(run_type, waited), max_active_runs=1) is None


def test_no_queue_note_before_the_run_started() -> None:
    assert queue_wait(SimpleNamespace(run_type="manual", run_after=NOW, start_date=None)) is None
