"""What the tests that run a real Airflow share: a metadata database, the small run, REST calls.

``test_airflow_scheduler`` (LocalExecutor) and ``test_airflow_celery`` (Celery workers)
start the same :class:`~shopflow.orchestration.stack.AirflowStack` on a PostgreSQL database
of their own and watch DAG runs through the REST API, as a person in the UI would.
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from conftest import POSTGRES_URL, require_service
from shopflow.processes import wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator

    import httpx

    from shopflow.orchestration.stack import AirflowStack

TRAINING = "shopflow_training"
RUN_TIMEOUT = 1200.0  # one training run on a loaded 2-core machine, with margin
SHORT_TIMEOUT = 600.0
DONE = {"success", "failed"}
SMALL_RUN: dict[str, Any] = {
    "generator": {"events": 30_000, "days": 70, "seed": 11},
    "task": {"horizon": "7d", "lookback": "28d", "cutoff_every": "7d"},
    "training": {"families": ["baseline", "xgboost"], "search_trials": 1,
                 "search_seconds": 20},
    # the first run (no champion yet) promotes whatever it trains: the scheduler test's
    # rollback later needs an earlier production model to go back to
    "gate": {"min_roc_auc": 0.0, "max_ece": 1.0, "min_slice_roc_auc": 0.0},
}
FAST_SCHEDULER = {
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "900",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
}


@contextmanager
def fresh_metadata_database() -> Iterator[str]:
    """A database of its own for Airflow's metadata on the local PostgreSQL, dropped after."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    import sqlalchemy as sa

    name = f"airflow_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'create database "{name}"'))
    url = sa.make_url(POSTGRES_URL).set(drivername="postgresql+psycopg2", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
        admin.dispose()


def dags_parsed(client: httpx.Client) -> bool:
    """Whether the dag-processor has serialized Shopflow's four DAGs."""
    response = client.get("/api/v2/dags", params={"tags": "shopflow"})
    return response.status_code == 200 and response.json()["total_entries"] == 4


def get_runs(api: httpx.Client, dag_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/api/v2/dags/{dag_id}/dagRuns",
                       params={"order_by": "run_after", "limit": 100})
    response.raise_for_status()
    return list(response.json()["dag_runs"])


def get_run(api: httpx.Client, dag_id: str, run_id: str) -> dict[str, Any]:
    response = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
    response.raise_for_status()
    return dict(response.json())


def get_tasks(api: httpx.Client, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                       params={"limit": 100})
    response.raise_for_status()
    return list(response.json()["task_instances"])


def trigger_run(api: httpx.Client, dag_id: str, conf: dict[str, Any]) -> str:
    """What the trigger form does: a manual run with a conf, no logical date."""
    response = api.post(f"/api/v2/dags/{dag_id}/dagRuns",
                        json={"logical_date": None, "conf": conf})
    assert response.status_code == 200, response.text
    return str(response.json()["dag_run_id"])


def unpause(api: httpx.Client, dag_id: str) -> None:
    response = api.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False})
    assert response.status_code == 200, response.text


def wait_finished(stack: AirflowStack, api: httpx.Client, dag_id: str, run_id: str,
                  timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
    """The run once it succeeded or failed; fails early if a component of ``stack`` dies."""
    wait_until(lambda: get_run(api, dag_id, run_id)["state"] in DONE, timeout=timeout,
               what=f"{dag_id} run {run_id} to finish", children=stack.children, interval=3)
    return get_run(api, dag_id, run_id)


def explain(api: httpx.Client, dag_id: str, run_id: str) -> str:
    """One line per task instance, for a failing assertion's message."""
    rows = sorted(get_tasks(api, dag_id, run_id), key=lambda t: t["start_date"] or "~")
    return "\n".join(f"{t['task_id']}[{t['map_index']}] {t['state']} try {t['try_number']} "
                     f"on {t.get('hostname') or '-'} {_clock(t['start_date'])}-"
                     f"{_clock(t['end_date'])}" for t in rows)


def _clock(value: str | None) -> str:
    return parse_time(value).strftime("%H:%M:%S.%f")[:-3] if value else "-"


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
