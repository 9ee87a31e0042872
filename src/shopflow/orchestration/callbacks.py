"""Failure callbacks: the final failure of a task becomes a ledger row and a run record.

"Which model served at time T and why" includes "why nothing changed": a run that
stopped (crash, blocked gate, timeout) is recorded as a ``rejection`` with no version,
the task and the error in its details, so ``shopflow status`` shows it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from shopflow.contract import PROPENSITY_MODEL, RECOMMENDER_MODEL

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shopflow.settings import Settings

logger = logging.getLogger(__name__)


def failure_reason(dag_id: str, task_id: str, error: BaseException | str | None) -> str:
    """A one-line reason for the ledger naming the DAG, the task and the error."""
    message = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else error
    return f"{dag_id} run stopped at {task_id}: {message or 'failed'}"[:2000]


def model_of_task(task_id: str) -> str:
    """The ledger model a task works for: the recommender branch, or propensity."""
    return RECOMMENDER_MODEL if task_id.startswith("train_recommender") else PROPENSITY_MODEL


def settings_for_run(params: Mapping[str, Any] | None, dag_id: str) -> Settings:
    """The run's settings; with bad params (maybe why it failed) the config's alone."""
    from shopflow.pipeline.params import ParamError, settings_from_params, specs_for
    from shopflow.settings import load_settings

    try:
        return settings_from_params(params, specs_for(dag_id))
    except ParamError:
        return load_settings((params or {}).get("config"))


def record_failure(
    *,
    params: Mapping[str, Any] | None,
    dag_id: str,
    run_id: str,
    task_id: str,
    error: BaseException | str | None,
    actor: str = "airflow",
) -> int | None:
    """Write a failed task to the ledger; returns the event id (None if it could not).

    Never raises: a broken ledger must not hide the original failure.
    """
    try:
        from shopflow.ledger import Ledger

        settings = settings_for_run(params, dag_id)
        ledger = Ledger(settings.ledger_url)
        try:
            return ledger.record_event(
                model=model_of_task(task_id),
                kind="rejection",
                version=None,
                reason=failure_reason(dag_id, task_id, error),
                actor=actor,
                details={"dag_id": dag_id, "run_id": run_id, "task_id": task_id,
                         "event": "task_failed"},
            )
        finally:
            ledger.close()
    except Exception:
        logger.exception("could not record the failure of %s.%s in the ledger", dag_id, task_id)
        return None


def record_task_failure(context: Mapping[str, Any]) -> None:
    """``on_failure_callback`` for every Shopflow task (see :func:`record_failure`)."""
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    record_failure(
        params=dict(context.get("params") or {}),
        dag_id=getattr(ti, "dag_id", None) or "unknown_dag",
        run_id=str(getattr(ti, "run_id", None) or getattr(dag_run, "run_id", "unknown_run")),
        task_id=getattr(ti, "task_id", None) or "unknown_task",
        error=context.get("exception"),
        actor=_actor(dag_run),
    )


def _actor(dag_run: Any) -> str:
    from shopflow.orchestration.runtime import actor_of

    return actor_of(dag_run)
