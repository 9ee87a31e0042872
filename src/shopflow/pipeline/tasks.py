"""The one door from an Airflow task into Shopflow: settings, timing, records, errors.

Every DAG task is a thin call to :func:`run_stage`, so the DAG files stay orchestration
only. It rebuilds the settings from the run's params (tasks may run on different
workers), runs the stage, writes its record for the summary and turns Shopflow's
"stop, this is not a glitch" errors (a blocked gate, bad params) into
``AirflowFailException`` so Airflow does not retry what a retry cannot fix.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from shopflow.pipeline.runs import StageRecord, safe_run_id, write_record
from shopflow.pipeline.stages import STAGES, StageContext, StageSkipped

logger = logging.getLogger(__name__)

# Errors that mean "the input or the data is wrong": retrying cannot help.
_PERMANENT_ERRORS = (
    "GateFailed",
    "ParamError",
    "ConfigError",
    "ValidationError",
    "UnknownParamError",
    "PipelineBlocked",
    "RollbackError",
    "ForcedPromotionError",
    "TrainingDataError",
    "IngestError",
    "EntityFrameError",
    "RecommendDataError",
)


def run_stage(
    stage: str,
    *,
    dag_id: str,
    params: Mapping[str, Any] | None,
    run_id: str,
    actor: str = "airflow",
    data_interval_start: Any = None,
    data_interval_end: Any = None,
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
        **kwargs: stage-specific inputs (a layer, a family, upstream results).

    Returns:
        The stage's JSON-able result, which Airflow keeps as the task's XCom.

    Raises:
        airflow.sdk.exceptions.AirflowFailException: a gate blocked or the input is bad.
        Exception: anything else (Airflow retries it with backoff).
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
        result = STAGES[stage](settings, context, **kwargs)
    except StageSkipped as exc:
        seconds = time.perf_counter() - started
        write_record(settings, run_id, StageRecord(stage=label, status="skipped", seconds=seconds,
                                                   result={"reason": str(exc)}))
        logger.info("stage %s: skipped: %s", label, exc)
        from airflow.sdk.exceptions import AirflowSkipException

        raise AirflowSkipException(str(exc)) from exc
    except Exception as exc:
        seconds = time.perf_counter() - started
        blocked = type(exc).__name__ in ("GateFailed", "PipelineBlocked")
        status = "blocked" if blocked else "failed"
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
                ),
            )
        logger.error("stage %s: %s after %.1fs: %s", label, status, seconds, exc)
        if type(exc).__name__ in _PERMANENT_ERRORS:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"{label} {status}: {exc}") from exc
        raise
    seconds = time.perf_counter() - started
    write_record(settings, run_id, StageRecord(stage=label, status="success", seconds=seconds,
                                               result=result))
    logger.info("stage %s: done in %.1fs", label, seconds)
    return result


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
    return details
