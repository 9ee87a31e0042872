"""
### Shopflow training

Raw shop events to a served purchase-propensity model, gated at every step:

1. **ingest** the configured source (or the synthetic generator) into `raw.raw_events`,
   then **gate 1 on raw** (Great Expectations; a failure quarantines the batch and stops).
2. **dbt** per layer (`staging`, `intermediate`, `marts`), gated after staging and marts.
3. **publish** the gated marts, **Feast** apply + materialize, build the point-in-time
   **training set** (Parquet in the run folder).
4. **train** one candidate per model family, in parallel (dynamic task mapping over the
   *Model families* param), **evaluate** them on the same out-of-time rows.
5. **gate 2** challenger vs champion, **register** the decision (ledger + model store),
   **deploy** (hot swap) and **gate 3** post-deploy check (rolls back on failure).
6. In parallel with 3-5, once the marts are published: **train_recommender** (LightGBM
   lambdarank and PyTorch NCF rankers vs popularity on held-out cutoffs, gate 2 on
   NDCG@10, decision in the ledger as the `recommender` model; the service hot swaps
   `POST /recommend`). The *Train recommendations* param switches it off.

Runs daily, on demand (the trigger form explains every param) and whenever the
monitoring DAG reports drift (`shopflow_drift_detected`). A forced promotion needs a
reason; who and why go to the ledger. Data moves through `SHOPFLOW_HOME`; tasks pass
only ids and summaries.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, TriggerRule, dag, task

from shopflow.orchestration.assets import DRIFT_DETECTED, MARTS, ONLINE_FEATURES, PRODUCTION_MODEL
from shopflow.orchestration.defaults import default_args
from shopflow.orchestration.params import dag_params
from shopflow.orchestration.runtime import current_queue_wait, stage

NO_RETRY = {"retries": 0}  # gates: a verdict, not a glitch; a retry cannot change it


@dag(
    dag_id="shopflow_training",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 3 * * *", timezone="UTC"), assets=DRIFT_DETECTED
    ),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=6),
    default_args=default_args(timeout=timedelta(hours=1)),
    params=dag_params("shopflow_training"),
    doc_md=__doc__,
    tags=["shopflow", "training"],
)
def shopflow_training() -> None:
    @task(retries=0)
    def plan():
        """Check params and config once; returns the model families to train.

        A run that waited behind another one (max_active_runs=1) says so in its record.
        """
        return stage("plan", queued=current_queue_wait())["families"]

    @task
    def ingest():
        return stage("ingest")

    @task(**NO_RETRY)
    def gate_raw(ingested: dict):
        return stage("quality_gate", layer="raw", ingested=ingested)

    @task
    def dbt_staging():
        return stage("dbt_layer", layer="staging")

    @task(**NO_RETRY)
    def gate_staging():
        return stage("quality_gate", layer="staging")

    @task
    def dbt_intermediate():
        return stage("dbt_layer", layer="intermediate")

    @task
    def dbt_marts():
        return stage("dbt_layer", layer="marts")

    @task(**NO_RETRY)
    def gate_marts():
        return stage("quality_gate", layer="marts")

    @task(outlets=[MARTS])
    def publish_marts():
        return stage("publish_marts")

    @task
    def feast_apply():
        return stage("feast_apply")

    @task(outlets=[ONLINE_FEATURES])
    def feast_materialize():
        return stage("feast_materialize")

    @task
    def training_set():
        """Point-in-time training rows via Feast, kept as Parquet for the candidates."""
        return stage("training_set")

    @task(execution_timeout=timedelta(hours=2))
    def train_candidate(family: str):
        return stage("train_candidate", family=family)

    @task(trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS)
    def evaluate(candidates: list[dict]):
        """Runs when every family is done and one succeeded: a broken family costs itself."""
        return stage("evaluate", candidates=[c for c in candidates if c])

    @task(**NO_RETRY)
    def champion_gate(evaluation: dict):
        return stage("champion_gate", evaluation=evaluation)

    @task(outlets=[PRODUCTION_MODEL])
    def register(decision: dict):
        return stage("register", decision=decision)

    @task(**NO_RETRY, execution_timeout=timedelta(hours=2))
    def train_recommender():
        """Recommendations beside the propensity model: train, gate 2, ledger decision."""
        return stage("train_recommender")

    @task
    def deploy(registered: dict):
        return stage("deploy", registered=registered)

    @task(**NO_RETRY)
    def post_deploy_check(deployed: dict):
        return stage("post_deploy_check", deployed=deployed)

    planned = plan()
    ingested = ingest()
    marts_ready = gate_marts()
    planned >> ingested
    (
        gate_raw(ingested)
        >> dbt_staging()
        >> gate_staging()
        >> dbt_intermediate()
        >> dbt_marts()
        >> marts_ready
    )
    published = marts_ready >> publish_marts()
    features = published >> feast_apply() >> feast_materialize()
    published >> train_recommender()
    candidates = train_candidate.expand(family=planned)
    features >> training_set() >> candidates
    post_deploy_check(deploy(register(champion_gate(evaluate(candidates)))))


shopflow_training()
