"""Inside a running task: hand the Airflow context to :func:`shopflow.pipeline.tasks.run_stage`.

DAG files call :func:`stage` from their task bodies, so the only thing a task body says is
*which* stage it runs with *what* inputs; run id, params, data interval and the triggering
user come from the task's context here, the same way for every task.
"""

from __future__ import annotations

from typing import Any


def actor_of(dag_run: Any) -> str:
    """Who a run acts for: the user who triggered it in Airflow, or the CLI's OS user."""
    user = getattr(dag_run, "triggering_user_name", None)
    if user == "dag_test":  # ``shopflow pipeline run`` (Airflow's dag.test)
        import getpass

        try:
            return f"airflow:cli:{getpass.getuser()}"
        except (KeyError, OSError):
            return "airflow:cli"
    return f"airflow:{user}" if user else "airflow"


#: A manual or asset-triggered run that started this much after it was asked for waited
#: behind another run (starting one takes the scheduler seconds, not half a minute).
QUEUED_AFTER_S = 30.0
#: Run types whose ``run_after`` is when someone (or an asset event) asked for the run;
#: a scheduled run's is its cron time, hours before it may legitimately start.
_ASKED_FOR = {"manual", "asset_triggered"}


def queue_wait(dag_run: Any, *, max_active_runs: int | None = None) -> dict[str, Any] | None:
    """Why a run started late, when it waited in the queue; None when it did not.

    A DAG with ``max_active_runs=1`` runs one run at a time: a manual trigger while a run
    is active (e.g. the scheduled run that unpausing a DAG starts at once) stays
    *queued* until that one finishes. The plan stage records this, so the run's summary
    says why it started late instead of leaving a person to guess.
    """
    run_type = str(getattr(getattr(dag_run, "run_type", None), "value",
                           getattr(dag_run, "run_type", "")))
    asked, started = getattr(dag_run, "run_after", None), getattr(dag_run, "start_date", None)
    if run_type not in _ASKED_FOR or asked is None or started is None:
        return None
    waited = (started - asked).total_seconds()
    if waited < QUEUED_AFTER_S:
        return None
    limit = f"max_active_runs={max_active_runs}" if max_active_runs else "max_active_runs"
    return {
        "waited_s": round(waited, 1),
        "asked_at": asked.isoformat(),
        "started_at": started.isoformat(),
        "note": f"queued {waited:.0f}s behind an earlier run of this DAG ({limit}: one run "
                "at a time); it started when that run finished",
    }


def current_queue_wait() -> dict[str, Any] | None:
    """:func:`queue_wait` for the run of the task that is running now."""
    from airflow.sdk import get_current_context

    context = get_current_context()
    return queue_wait(context.get("dag_run"),
                      max_active_runs=getattr(context["dag"], "max_active_runs", None))


def stage(name: str, **inputs: Any) -> dict[str, Any]:
    """Run the Shopflow stage ``name`` for the current task instance.

    Args:
        name: a key of :data:`shopflow.pipeline.stages.STAGES`.
        **inputs: stage inputs (layer, family, upstream results as XCom values).

    Returns:
        The stage's JSON-able result (the task's XCom).
    """
    from airflow.sdk import get_current_context

    from shopflow.pipeline.tasks import run_stage

    context = get_current_context()
    return run_stage(
        name,
        dag_id=context["dag"].dag_id,
        params=dict(context.get("params") or {}),
        run_id=context["run_id"],
        actor=actor_of(context.get("dag_run")),
        data_interval_start=context.get("data_interval_start"),
        data_interval_end=context.get("data_interval_end"),
        task_id=getattr(context.get("task"), "task_id", None),
        **inputs,
    )
