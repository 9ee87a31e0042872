"""
### Shopflow features

Hourly incremental materialization: keeps the Feast online store (SQLite or Redis) in
step with the published marts, so the serving snapshot of every known user is at most an
hour behind the warehouse. Feast picks up from its last materialized time (minus the
configured overlap), so a run repeated for the same hour writes the same values again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import CronTriggerTimetable, dag, task

from shopflow.orchestration.assets import ONLINE_FEATURES
from shopflow.orchestration.defaults import default_args
from shopflow.orchestration.params import dag_params
from shopflow.orchestration.runtime import stage


@dag(
    dag_id="shopflow_features",
    schedule=CronTriggerTimetable("15 * * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=50),
    default_args=default_args(retries=3, timeout=timedelta(minutes=40)),
    params=dag_params("shopflow_features"),
    doc_md=__doc__,
    tags=["shopflow", "features"],
)
def shopflow_features() -> None:
    @task
    def feast_apply():
        return stage("feast_apply")

    @task(outlets=[ONLINE_FEATURES])
    def materialize_incremental():
        return stage("feast_materialize", incremental=True)

    feast_apply() >> materialize_incremental()


shopflow_features()
