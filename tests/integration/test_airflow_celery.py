"""The CeleryExecutor, natively: two ``airflow celery worker`` processes run the training DAG.

The same :class:`~shopflow.orchestration.stack.AirflowStack` as ``make airflow`` with
``airflow.executor: CeleryExecutor``: metadata in a PostgreSQL database created for this
module (dropped afterwards), which is also Celery's result backend (``db+postgresql``), the
local Redis as broker (db 5, and a queue of this module's own, so no other stack's worker
takes its tasks), two workers of one task slot each, and a real model service.

Unpausing ``shopflow_training`` starts a scheduled run at once; it is failed straight away
(it would train the recommender too, which holds one of the two slots) and a manual run
with three candidate families and without the recommender is triggered, as the trigger
form does. That run must succeed; its mapped candidates all run; and its tasks run on both workers,
side by side (a task instance's hostname is the worker's Celery node name): two tasks on
different workers overlap in time. Which tasks overlap is the scheduler's business, not
this test's: the candidates are queued together when the training set is ready, but on a
quiet machine each trains in ~1.5 s, and one CI run placed all three on one worker while
the other ran a 9 s task of a parallel branch (side by side, just not the candidates).
After the stack stops, no process of any of its process groups is left.
"""

from __future__ import annotations

import os
import time
import uuid
from itertools import combinations
from typing import TYPE_CHECKING, Any

import psutil
import pytest
import yaml
from dag_runs import (
    DONE,
    FAST_SCHEDULER,
    SHORT_TIMEOUT,
    SMALL_RUN,
    TRAINING,
    dags_parsed,
    explain,
    fresh_metadata_database,
    get_runs,
    get_tasks,
    parse_time,
    trigger_run,
    unpause,
    wait_finished,
)

from conftest import REDIS_HOST, REDIS_PORT, require_service
from shopflow.orchestration.stack import AirflowStack
from shopflow.processes import wait_until
from shopflow.serving.process import free_port
from shopflow.settings import load_settings

if TYPE_CHECKING:
    from collections.abc import Iterator

    import httpx

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.redis,
              pytest.mark.slow]

#: Redis db of this test's broker (the Feast tests use db 0; docker-compose's broker db 1).
BROKER_DB = 5
WORKERS = 2
CANDIDATES = ["baseline", "xgboost", "lightgbm"]


@pytest.fixture(scope="module")
def metadata_db() -> Iterator[str]:
    with fresh_metadata_database() as url:
        yield url


@pytest.fixture(scope="module")
def stack_groups() -> list[int]:
    """The process groups the stack started, filled in by ``stack`` (checked after stop)."""
    return []


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, metadata_db: str,
          stack_groups: list[int]) -> Iterator[AirflowStack]:
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    root = tmp_path_factory.mktemp("airflow_celery")
    config = root / "run.yaml"
    config.write_text(yaml.safe_dump({
        **SMALL_RUN,
        "serving": {"port": free_port(), "post_deploy_window": 1},
        "airflow": {"metadata_url": metadata_db, "executor": "CeleryExecutor",
                    "celery_workers": WORKERS, "celery_concurrency": 1,
                    "broker_url": f"redis://{REDIS_HOST}:{REDIS_PORT}/{BROKER_DB}"},
    }))
    settings = load_settings(config, home=root / "home")
    queue = f"shopflow-test-{uuid.uuid4().hex[:8]}"
    running = AirflowStack(settings, port=free_port(), config_path=config,
                           inherit_shopflow_env=False,
                           extra_env={**FAST_SCHEDULER, "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue})
    try:
        running.start(timeout=300)
        stack_groups.extend(running.pids().values())
        yield running
    finally:
        running.stop()
        _forget_queue(queue)
    assert not [c.name for c in running.children if c.running()], "a component survived"


def _forget_queue(queue: str) -> None:
    """Drop the broker's keys of this module's queue (kombu's bindings outlive workers)."""
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=BROKER_DB)
    try:
        keys = list(client.scan_iter(match=f"*{queue}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="module")
def api(stack: AirflowStack) -> Iterator[httpx.Client]:
    with stack.client() as client:
        wait_until(lambda: dags_parsed(client), timeout=SHORT_TIMEOUT,
                   what="the dag-processor to serialize the four DAGs", children=stack.children)
        yield client


@pytest.fixture(scope="module")
def celery_run(stack: AirflowStack, api: httpx.Client) -> dict[str, Any]:
    """Unpause, fail the scheduled run it starts, trigger one without the recommender."""
    unpause(api, TRAINING)
    wait_until(lambda: any(r["run_type"] == "scheduled" for r in get_runs(api, TRAINING)),
               timeout=SHORT_TIMEOUT, what="the scheduled run unpausing starts",
               children=stack.children)
    scheduled = next(r for r in get_runs(api, TRAINING) if r["run_type"] == "scheduled")
    api.patch(f"/api/v2/dags/{TRAINING}/dagRuns/{scheduled['dag_run_id']}",
              json={"state": "failed"}).raise_for_status()
    started = time.monotonic()
    run_id = trigger_run(api, TRAINING, {"recommend": False, "families": CANDIDATES})
    run = wait_finished(stack, api, TRAINING, run_id)
    return {"run": run, "tasks": get_tasks(api, TRAINING, run_id),
            "waited_s": time.monotonic() - started}


def _candidates(celery_run: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in celery_run["tasks"] if t["task_id"] == "train_candidate"]


def test_the_training_run_succeeds_on_celery_workers(
        stack: AirflowStack, api: httpx.Client, celery_run: dict[str, Any]) -> None:
    run = celery_run["run"]
    assert run["state"] == "success", explain(api, TRAINING, run["dag_run_id"])
    states = {t["task_id"]: t["state"] for t in celery_run["tasks"]}
    assert states["deploy"] == "success" and states["post_deploy_check"] == "success", states
    assert states["train_recommender"] == "skipped", states
    # every task that ran, ran on one of the workers (none on the scheduler's host name)
    ran = {t["hostname"] for t in celery_run["tasks"] if t["state"] == "success"}
    assert ran <= set(stack.worker_hostnames), ran
    wall = parse_time(run["end_date"]) - parse_time(run["start_date"])
    print("\n" + explain(api, TRAINING, run["dag_run_id"]))
    print(f"\ncelery training run {run['dag_run_id']}: {wall.total_seconds():.0f}s in Airflow, "
          f"{celery_run['waited_s']:.0f}s from trigger to success")


def test_celery_kept_the_task_states_in_the_postgresql_result_backend(
        stack: AirflowStack, metadata_db: str, celery_run: dict[str, Any]) -> None:
    import sqlalchemy as sa

    assert stack.env["AIRFLOW__CELERY__RESULT_BACKEND"] == f"db+{metadata_db}"
    engine = sa.create_engine(metadata_db)
    states: dict[str, int] = {}

    def recorded() -> bool:
        """A worker's Celery task ends a moment after its task instance reports success."""
        with engine.connect() as conn:
            states.update(conn.execute(sa.text(
                "select status, count(*) from celery_taskmeta group by status")).all())
        return states.get("SUCCESS", 0) >= len(ran)

    ran = [t for t in celery_run["tasks"] if t["state"] == "success"]
    try:
        wait_until(recorded, timeout=120, what="Celery's SUCCESS rows for every task that ran",
                   children=stack.children, interval=2)
    finally:
        engine.dispose()
    assert states["SUCCESS"] >= len(ran) > 10, states


def test_the_run_ran_on_both_workers_side_by_side(
        stack: AirflowStack, celery_run: dict[str, Any]) -> None:
    candidates = _candidates(celery_run)
    assert sorted(t["map_index"] for t in candidates) == list(range(len(CANDIDATES)))
    assert all(t["state"] == "success" for t in candidates), candidates
    ran = [t for t in celery_run["tasks"] if t["state"] == "success"]
    print("\n" + "\n".join(f"{t['task_id']}[{t['map_index']}] on {t['hostname']}: "
                           f"{t['start_date']} .. {t['end_date']}" for t in ran))
    assert {t["hostname"] for t in ran} == set(stack.worker_hostnames), ran
    # side by side: some two tasks on different workers ran at the same time
    spans = [(parse_time(t["start_date"]), parse_time(t["end_date"]), t["hostname"])
             for t in ran]
    assert any(a[2] != b[2] and a[0] < b[1] and b[0] < a[1]
               for a, b in combinations(spans, 2)), spans


def test_a_workers_task_log_reads_in_the_api(
        api: httpx.Client, celery_run: dict[str, Any]) -> None:
    """Workers serve no logs of their own: the api-server reads their shared log folder."""
    task = _candidates(celery_run)[0]
    response = api.get(
        f"/api/v2/dags/{TRAINING}/dagRuns/{celery_run['run']['dag_run_id']}/taskInstances/"
        f"train_candidate/logs/{task['try_number']}", params={"map_index": task["map_index"]},
        headers={"Accept": "application/json"})
    assert response.status_code == 200, response.text
    text = str(response.json()["content"])
    family = CANDIDATES[task["map_index"]]
    assert f"stage train_candidate[{family}]: done" in text, text[:3000]


def test_stopping_the_stack_leaves_no_process(
        stack: AirflowStack, stack_groups: list[int], celery_run: dict[str, Any]) -> None:
    names = [c.name for c in stack.children]
    assert names[-WORKERS:] == ["worker-1", "worker-2"], names
    assert stack.exited() is None, "a component died during the run"
    stack.stop()
    left = []
    for proc in psutil.process_iter(["pid", "name", "status"]):
        try:
            group = os.getpgid(proc.pid)
        except ProcessLookupError:
            continue
        if group in stack_groups and proc.info["status"] != psutil.STATUS_ZOMBIE:
            left.append((proc.pid, proc.info["name"]))
    assert left == [], f"still running after stop: {left}"
    assert celery_run["run"]["state"] in DONE
