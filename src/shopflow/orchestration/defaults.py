"""Task defaults shared by Shopflow's DAGs: retries with backoff, timeouts, callbacks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shopflow.orchestration.callbacks import record_task_failure
from shopflow.orchestration.notifier import run_failed_alert

START_DATE_ISO = "2026-01-01T00:00:00+00:00"


def default_args(*, retries: int = 2, timeout: timedelta = timedelta(hours=1)) -> dict[str, Any]:
    """``default_args`` for a Shopflow DAG.

    Transient failures (a busy database, a slow Feast registry) get retried with
    exponential backoff; a blocked gate raises ``AirflowFailException`` and is not
    retried. Every task has a timeout so a stuck stage cannot hold a run forever, and the
    final failure of any task is written to the ledger and sent as a ``run_failed`` alert
    (a task-level notifier: DAG-level callbacks of ``dag.test()`` cannot render a run
    whose params have a required value, and ``shopflow pipeline run`` is ``dag.test()``).
    """
    return {
        "owner": "shopflow",
        "retries": retries,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
        "execution_timeout": timeout,
        "on_failure_callback": [record_task_failure, run_failed_alert()],
    }
