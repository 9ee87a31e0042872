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
    HOSTNAME_CALLABLE,
    WORKER_HOSTNAME_ENV,
    AirflowStack,
    async_metadata_url,
    component_environment,
    generate_login,
    metadata_url_of,
    stack_environment,
    worker_hostname,
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


PG_METADATA = "postgresql+psycopg2://postgres@127.0.0.1:5432/airflow_x"


def test_celery_executor_gets_its_broker_and_the_metadata_db_as_result_backend(
        shopflow_home: Path, tmp_path: Path) -> None:
    settings = load_settings(airflow={"metadata_url": PG_METADATA,
                                      "executor": "CeleryExecutor", "celery_concurrency": 3,
                                      "broker_url": "redis://127.0.0.1:6379/5"})
    env = stack_environment(settings, login=generate_login("admin"),
                            passwords_file=tmp_path / "p.json", port=8080)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:6379/5"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == f"db+{PG_METADATA}"
    assert env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == "3"


def test_local_executor_has_no_celery_settings(settings: Settings, tmp_path: Path) -> None:
    env = stack_environment(settings, login=generate_login("admin"),
                            passwords_file=tmp_path / "p.json", port=8080)
    assert not [key for key in env if key.startswith("AIRFLOW__CELERY__")]


def test_celery_stack_starts_one_named_worker_each_after_the_servers(
        shopflow_home: Path) -> None:
    settings = load_settings(airflow={"metadata_url": PG_METADATA,
                                      "executor": "CeleryExecutor", "celery_workers": 3})
    stack = AirflowStack(settings, with_service=False)
    children = stack.components()
    names = [c.name for c in children]
    assert names == ["api-server", "scheduler", "dag-processor", "triggerer",
                     "worker-1", "worker-2", "worker-3"]
    workers = children[4:]
    hostnames = [w.env[WORKER_HOSTNAME_ENV] for w in workers]
    assert hostnames == stack.worker_hostnames and len(set(hostnames)) == 3
    for worker, hostname in zip(workers, hostnames, strict=True):
        assert worker.command[1:3] == ["celery", "worker"]
        assert worker.command[worker.command.index("--celery-hostname") + 1] == hostname
        assert worker.env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] == HOSTNAME_CALLABLE
        assert worker.env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == \
            stack.env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
    # the servers report the machine's own name
    assert all(WORKER_HOSTNAME_ENV not in c.env for c in children[:4])


def test_local_stack_starts_no_worker(settings: Settings) -> None:
    stack = AirflowStack(settings, with_service=False)
    assert stack.worker_hostnames == []
    assert [c.name for c in stack.components()] == ["api-server", "scheduler",
                                                    "dag-processor", "triggerer"]


def test_worker_hostname_is_the_workers_name_else_the_machines(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys
    from pathlib import Path

    import shopflow

    monkeypatch.delenv(WORKER_HOSTNAME_ENV, raising=False)
    assert worker_hostname() == socket.getfqdn()
    monkeypatch.setenv(WORKER_HOSTNAME_ENV, "worker-2@shop-host")
    assert worker_hostname() == "worker-2@shop-host"
    # what the task runner reports, through Airflow's own config (own AIRFLOW_HOME)
    probe = "from airflow.sdk.api.client import get_hostname; print(get_hostname())"
    env = {"AIRFLOW_HOME": str(tmp_path), "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(Path(shopflow.__file__).parents[1]), WORKER_HOSTNAME_ENV: "worker-2@h",
           "AIRFLOW__CORE__HOSTNAME_CALLABLE": HOSTNAME_CALLABLE}
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-1] == "worker-2@h"


def test_the_locked_celery_provider_loads_its_executor_and_worker(tmp_path: Path) -> None:
    """Celery 5.7 dropped a name provider 3.26 imports: the lock must hold a pair that loads.

    Parsing ``airflow celery worker`` (the compose test) does not import the executor; this
    does, in its own AIRFLOW_HOME.
    """
    import subprocess
    import sys

    probe = ("from airflow.providers.celery.executors.celery_executor import CeleryExecutor\n"
             "from airflow.providers.celery.cli.celery_command import worker\n"
             "print('LOADED', CeleryExecutor.__name__, worker.__name__)")
    result = subprocess.run([sys.executable, "-c", probe],
                            env={"AIRFLOW_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "LOADED CeleryExecutor" in result.stdout


@pytest.mark.parametrize(("airflow", "key"), [
    ({"executor": "CeleryExecutor"}, "airflow.metadata_url"),
    ({"executor": "CeleryExecutor", "metadata_url": "sqlite:////tmp/a.db"},
     "airflow.metadata_url"),
    ({"executor": "CeleryExecutor", "metadata_url": PG_METADATA,
      "broker_url": "amqp://guest:hunter2@mq:5672//"}, "airflow.broker_url"),
    ({"executor": "KubernetesExecutor"}, "executor"),
    ({"celery_workers": 0}, "celery_workers"),
])
def test_bad_celery_settings_are_refused_naming_the_key(
        shopflow_home: Path, airflow: dict[str, object], key: str) -> None:
    from shopflow.settings import ConfigError

    with pytest.raises((ConfigError, ValueError)) as excinfo:
        load_settings(airflow=airflow)
    assert key in str(excinfo.value)
    assert "hunter2" not in str(excinfo.value)


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
