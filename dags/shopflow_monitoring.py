"""
### Shopflow monitoring

Daily checks of the production model against what the shop does now:

* **feature drift** — population stability index (PSI) of every feature at the latest
  serving snapshot against the training reference of the production model;
* **prediction drift** — PSI of the production model's scores, same reference;
* **gate 4 (live)** — production judged on what it served: the prediction log joined with
  the labels matured since, against the previous model's served traffic (or the previous
  model re-scoring the same logged rows); beside it the backtest, production and the
  previous model scored on the *same* labels that matured since production was deployed.
  A drop of the primary metric beyond `live_tolerance` rolls production back
  automatically (ledger row with the numbers, `rollback` alert);
* **skew** — a sample of served rows against Feast's point-in-time offline features and
  the model's offline score; a mismatch fails the task and sends a `skew` alert.
* **staleness** — in data time (newest published event): the production model's age
  since its last training cutoff, the online store's materialization lag, the production
  recommender's snapshot age; each over its `monitoring.max_*` threshold alerts
  (`staleness`). The model-age threshold defaults to the one the training report measured.

* **A/B test** (`serving.experiment`) — per-arm purchase rate and ROC AUC on matured
  labels with confidence intervals, and the declared decision: *promote* (nominates the
  challenger; gate 3 moves production), *stop* (a ledger rejection ends the test) or
  *continue*; skipped while no test runs;
* **shadow** — agreement and score differences of the shadow log's two models, and their
  outcomes on matured labels; skipped while the log is empty.

Drift beyond the threshold emits `shopflow_drift_detected`, which triggers
`shopflow_training`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import CronTriggerTimetable, dag, task

from shopflow.orchestration.assets import DRIFT_DETECTED, PRODUCTION_MODEL
from shopflow.orchestration.defaults import default_args
from shopflow.orchestration.params import dag_params
from shopflow.orchestration.runtime import stage


@dag(
    dag_id="shopflow_monitoring",
    schedule=CronTriggerTimetable("0 6 * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=2),
    default_args=default_args(timeout=timedelta(minutes=45)),
    params=dag_params("shopflow_monitoring"),
    doc_md=__doc__,
    tags=["shopflow", "monitoring"],
)
def shopflow_monitoring() -> None:
    @task
    def feature_drift():
        return stage("feature_drift")

    @task
    def prediction_drift():
        return stage("prediction_drift")

    @task(outlets=[DRIFT_DETECTED])
    def signal_retraining(features: dict, predictions: dict):
        """Emits the drift asset only when drift crossed the threshold (else: skipped)."""
        return stage("drift_verdict", features=features, predictions=predictions)

    @task(outlets=[PRODUCTION_MODEL], retries=0)
    def live_gate():
        return stage("live_gate")

    @task(retries=0)
    def skew_check():
        return stage("skew_check")

    @task
    def staleness():
        """Alerts on a stale model, online store or recommender snapshot; never fails."""
        return stage("staleness")
    @task(outlets=[PRODUCTION_MODEL], retries=0)
    def experiment_readout():
        """The A/B test's per-arm outcomes and decision (promote runs gate 3)."""
        return stage("experiment_readout")

    @task
    def shadow_readout():
        return stage("shadow_readout")

    signal_retraining(feature_drift(), prediction_drift())
    live_gate()
    skew_check()
    staleness()
    experiment_readout()
    shadow_readout()


shopflow_monitoring()
