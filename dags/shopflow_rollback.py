"""
### Shopflow rollback

Manual: put an earlier model back in production. Give the version to restore (empty: the
previous production model) and a reason; the ledger records who, when, from which version
to which, and why. The serving process picks the change up by polling the ledger's
production alias (hot swap, no restart).

The rollback is not retried, and is idempotent per run besides: a cleared or re-run task
finds this run's rollback in the ledger and does not roll back a second time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import dag, task

from shopflow.orchestration.assets import PRODUCTION_MODEL
from shopflow.orchestration.defaults import default_args
from shopflow.orchestration.params import dag_params
from shopflow.orchestration.runtime import stage


@dag(
    dag_id="shopflow_rollback",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=30),
    default_args=default_args(retries=0, timeout=timedelta(minutes=10)),
    params=dag_params("shopflow_rollback"),
    doc_md=__doc__,
    tags=["shopflow", "rollback"],
)
def shopflow_rollback() -> None:
    @task(outlets=[PRODUCTION_MODEL])
    def rollback():
        return stage("rollback")

    rollback()


shopflow_rollback()
