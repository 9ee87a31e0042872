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
        **inputs,
    )
