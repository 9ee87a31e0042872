"""The one door from an Airflow task into Shopflow: settings, timing, records, errors.

Every DAG task is a thin call to :func:`run_stage`, so the DAG files stay orchestration
only. It rebuilds the settings from the run's params (tasks may run on different
workers), runs the stage, writes its record for the summary and turns Shopflow's
"stop, this is not a glitch" errors into ``AirflowFailException`` so Airflow does not
retry what a retry cannot fix. Which errors those are is decided by type: every
:class:`~shopflow.errors.PermanentError` (a blocked gate, a failed dbt test, bad params
or config, data that cannot be trained on) and pydantic's ``ValidationError``; see
:func:`shopflow.errors.blocks_run`. Such a stage is recorded as ``blocked``; any other
error is recorded as ``failed`` and re-raised for Airflow to retry.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from shopflow.errors import blocks_run
from shopflow.faults import crash_point
from shopflow.memory import release_memory
from shopflow.pipeline.runs import safe_run_id, write_record
from shopflow.pipeline.stages import stage_function
from shopflow.pipeline.vocabulary import StageContext, StageRecord, StageSkipped, StageStatus

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shopflow.settings import AlertEvent, Settings

logger = logging.getLogger(__name__)


def run_stage(
    stage: str,
    *,
    dag_id: str,
    params: Mapping[str, Any] | None,
    run_id: str,
    actor: str = "airflow",
    data_interval_start: Any = None,
    data_interval_end: Any = None,
    task_id: str | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Run one named stage of a Shopflow DAG and record what it did.

    Args:
        stage: a key of :data:`shopflow.pipeline.stages.STAGES`.
        dag_id: the DAG the task belongs to (chooses the param table).
        params: the DAG run's params (trigger form or schedule defaults).
        run_id: the Airflow run id; model versions and run records hang off it.
        actor: who started the run (the triggering user), kept in the ledger.
        data_interval_start: start of the run's data interval, for incremental stages.
        data_interval_end: end of the run's data interval.
        task_id: the Airflow task running the stage, kept in its record.
        **kwargs: stage-specific inputs (a layer, a family, upstream results).

    Returns:
        The stage's JSON-able result, which Airflow keeps as the task's XCom.

    Raises:
        airflow.sdk.exceptions.AirflowSkipException: the stage had nothing to do.
        airflow.sdk.exceptions.AirflowFailException: a permanent error (a gate blocked,
            a dbt test failed, the params, config or data are bad): no retry.
        Exception: anything else, as raised (Airflow retries it with backoff).
    """
    from shopflow.pipeline.params import settings_from_params, specs_for

    label = _label(stage, kwargs)
    started = time.perf_counter()
    settings = None
    try:
        settings = settings_from_params(params, specs_for(dag_id))
        context = StageContext(
            run_id=safe_run_id(run_id),
            params=dict(params or {}),
            dag_id=dag_id,
            actor=actor or "airflow",
            data_interval_start=_iso(data_interval_start),
            data_interval_end=_iso(data_interval_end),
        )
        logger.info("stage %s: starting (run %s)", label, context.run_id)
        crash_point(f"before:{label}")
        try:
            result = stage_function(stage)(settings, context, **kwargs)
        finally:
            release_memory()  # the next task may run in this same process (dag.test)
        crash_point(f"after:{label}")  # the work is done, Airflow does not know it yet
    except StageSkipped as exc:
        seconds = time.perf_counter() - started
        if settings is not None:
            write_record(settings, run_id, StageRecord(stage=label, status="skipped",
                                                       seconds=seconds, task_id=task_id,
                                                       result={"reason": str(exc)}))
        logger.info("stage %s: skipped: %s", label, exc)
        from airflow.sdk.exceptions import AirflowSkipException

        raise AirflowSkipException(str(exc)) from exc
    except Exception as exc:
        seconds = time.perf_counter() - started
        blocked = blocks_run(exc)
        status: StageStatus = "blocked" if blocked else "failed"
        if settings is not None:
            write_record(
                settings,
                run_id,
                StageRecord(
                    stage=label,
                    status=status,
                    seconds=seconds,
                    result=_error_details(exc),
                    error=f"{type(exc).__name__}: {exc}",
                    task_id=task_id,
                ),
            )
        logger.error("stage %s: %s after %.1fs: %s", label, status, seconds, exc)
        if blocked and settings is not None:
            _alert_blocked(settings, label, run_id, exc)
        if blocked:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"{label} {status}: {exc}") from exc
        raise
    seconds = time.perf_counter() - started
    write_record(settings, run_id, StageRecord(stage=label, status="success", seconds=seconds,
                                               result=result, task_id=task_id))
    logger.info("stage %s: done in %.1fs", label, seconds)
    return result


def _alert_blocked(settings: Settings, label: str, run_id: str, exc: BaseException) -> None:
    """A gate (or a check standing in for one) stopped the run: tell people, with its report.

    A deploy left pending (no service for gate 3) is its own kind: nothing is wrong with the
    model, someone has to start the service.
    """
    from shopflow.alerts import send_alert
    from shopflow.deploy.gate import DeployPending

    event: AlertEvent = "deploy_pending" if isinstance(exc, DeployPending) else "gate_blocked"
    send_alert(settings, event, f"{label} blocked run {run_id}: {exc}",
               {"stage": label, "run_id": run_id, "error": f"{type(exc).__name__}: {exc}",
                **_error_details(exc)})


def _label(stage: str, kwargs: Mapping[str, Any]) -> str:
    for key in ("layer", "family"):
        if key in kwargs and isinstance(kwargs[key], str):
            return f"{stage}[{kwargs[key]}]"
    return stage


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    isoformat = getattr(value, "isoformat", None)
    return isoformat() if callable(isoformat) else str(value)


def _error_details(exc: BaseException) -> dict[str, Any]:
    """What a blocked gate or failed stage can tell the summary (report paths, checks)."""
    details: dict[str, Any] = {}
    result = getattr(exc, "result", None)
    to_dict = getattr(result, "to_dict", None)
    if callable(to_dict):
        try:
            details["gate"] = to_dict()
        except Exception:  # a summary must never hide the real error
            logger.debug("could not serialize gate result", exc_info=True)
    for attr in ("report_path", "quarantine_path"):
        value = getattr(exc, attr, None) or getattr(result, attr, None)
        if value is not None:
            details[attr] = str(value)
    failures = getattr(exc, "failures", None)  # dbt: the nodes that failed
    if isinstance(failures, list) and failures:
        details["failures"] = [_node_line(node) for node in failures]
    return details


def _node_line(node: Any) -> str:
    """``test not_null_x: fail <message>`` for a failed dbt node, else the node as text."""
    name = getattr(node, "name", None)
    if name is None:
        return str(node)
    line = f"{getattr(node, 'resource_type', 'node')} {name}: {getattr(node, 'status', '')}"
    message = getattr(node, "message", None)
    return f"{line} {message}" if message else line
