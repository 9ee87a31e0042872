"""Airflow notifier: a task of a Shopflow DAG run that failed for good becomes an alert.

Every Shopflow task has it as an ``on_failure_callback`` (:mod:`shopflow.orchestration.defaults`),
so the scheduler and ``dag.test()`` (which ``shopflow pipeline run`` uses) both tell people
when a run fails. It delivers through :func:`shopflow.alerts.send_alert`, the function stage
code uses for the alerts it raises itself (blocked gate, deploy pending, rollback, drift),
so both paths share one configuration (``settings.alerts``) and one format. A task stopped
by a blocked gate is not alerted twice: the stage already sent ``gate_blocked``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shopflow.settings import AlertEvent, Settings

logger = logging.getLogger(__name__)


class ShopflowAlertNotifier(BaseNotifier):
    """Send one Shopflow alert for the DAG run (or task) the callback context describes.

    Args:
        event: the alert kind (``run_failed`` for a DAG's ``on_failure_callback``).
    """

    template_fields = ()

    def __init__(self, *, event: AlertEvent = "run_failed") -> None:
        super().__init__()
        self.event: AlertEvent = event

    def notify(self, context: Any) -> None:
        """Build the summary from the context and send it; never raises."""
        try:
            _notify(self.event, context)
        except Exception:  # a notifier must not turn a failed run into a crashed callback
            logger.exception("could not send the %s alert", self.event)


def _notify(event: AlertEvent, context: Mapping[str, Any]) -> None:
    from shopflow.alerts import send_alert
    from shopflow.errors import blocks_run
    from shopflow.orchestration.callbacks import settings_for_run

    error = context.get("exception")
    if isinstance(error, BaseException) and error.__cause__ is not None \
            and blocks_run(error.__cause__):
        return  # run_stage already sent the gate_blocked (or deploy_pending) alert
    dag_run = context.get("dag_run")
    ti = context.get("ti") or context.get("task_instance")
    dag = context.get("dag")
    dag_id = (getattr(dag, "dag_id", None) or getattr(dag_run, "dag_id", None)
              or getattr(ti, "dag_id", None) or "unknown_dag")
    run_id = str(getattr(dag_run, "run_id", None) or getattr(ti, "run_id", None) or "unknown")
    params = dict(context.get("params") or getattr(dag_run, "conf", None) or {})
    settings = settings_for_run(params, dag_id)
    stopped = _stopped_stages(settings, run_id)
    task_id = getattr(ti, "task_id", None)
    reason = context.get("reason") or error
    summary = f"{dag_id} run {run_id} failed" + (f" at {task_id}" if task_id else "")
    if reason:
        summary += f": {reason}"
    send_alert(settings, event, summary, {
        "dag_id": dag_id, "run_id": run_id, "reason": str(reason) if reason else None,
        "stopped_stages": stopped, "task_id": task_id,
    })


def _stopped_stages(settings: Settings, run_id: str) -> list[str]:
    """The run's stages that failed or were blocked, with their errors (from the run folder)."""
    from shopflow.pipeline.runs import read_records

    try:
        records = read_records(settings, run_id)
    except Exception:  # the alert still goes out without them
        logger.debug("no stage records for %s", run_id, exc_info=True)
        return []
    return [f"{r.stage} ({r.status}: {(r.error or '')[:200]})" for r in records.values()
            if r.status in ("failed", "blocked")]


def run_failed_alert() -> ShopflowAlertNotifier:
    """The alerting ``on_failure_callback`` of every Shopflow task."""
    return ShopflowAlertNotifier(event="run_failed")
