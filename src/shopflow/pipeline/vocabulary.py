"""The words every stage and the task runner share: context, outcomes, records, results.

A stage is a plain function ``(settings, context, **inputs) -> StageResult``; it ends in
one of four ways, each with its record status:

* it returns a small JSON-able summary (``success``);
* it raises :class:`StageSkipped`: nothing to do in this run (``skipped``, downstream skips);
* it raises a :class:`~shopflow.errors.PermanentError` such as :class:`PipelineBlocked`:
  a gate or the input said no (``blocked``, never retried);
* anything else is a glitch (``failed``, Airflow retries it).

This module is the leaf of the stage layer: the stage modules, the registry
(:mod:`shopflow.pipeline.stages`), the runner (:mod:`shopflow.pipeline.tasks`) and the run
records (:mod:`shopflow.pipeline.runs`) import it, and it imports none of them, so the
layer has no import cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeAlias

from shopflow.errors import PermanentError

#: What a stage returns: ids, paths, counts and verdicts (the task's XCom), never frames.
StageResult: TypeAlias = dict[str, Any]
#: A stage: ``(settings, context, **inputs) -> StageResult``.
StageFunction: TypeAlias = Callable[..., StageResult]
#: How a stage ended, as its record says.
StageStatus: TypeAlias = Literal["success", "skipped", "blocked", "failed"]


class PipelineBlocked(PermanentError, RuntimeError):
    """A stage decided that the run must stop here (not a crash: a verdict)."""


class StageSkipped(Exception):
    """Nothing for this stage to do in this run (dry run, champion kept); downstream skips."""


@dataclass(frozen=True)
class StageContext:
    """What a stage knows about the run it belongs to.

    Attributes:
        run_id: filesystem-safe run id (model versions and records hang off it).
        params: the run's params as triggered (unresolved).
        dag_id: the DAG the run belongs to.
        actor: who triggered the run, recorded with every ledger decision.
        data_interval_start: ISO start of the run's data interval, if scheduled.
        data_interval_end: ISO end of the run's data interval, if scheduled.
    """

    run_id: str
    params: dict[str, Any] = field(default_factory=dict)
    dag_id: str = "shopflow_training"
    actor: str = "airflow"
    data_interval_start: str | None = None
    data_interval_end: str | None = None

    @property
    def resolved(self) -> dict[str, Any]:
        """Params with defaults filled in."""
        from shopflow.pipeline.params import resolve_params, specs_for

        return resolve_params(self.params, specs_for(self.dag_id))


@dataclass
class StageRecord:
    """What one stage of a run did.

    Attributes:
        stage: stage name, e.g. ``dbt_marts`` or ``train_candidate[xgboost]``.
        status: ``success``, ``skipped``, ``failed`` or ``blocked`` (a gate said no).
        seconds: wall time of the stage body.
        result: the stage's JSON-able summary (rows, verdicts, versions...).
        error: the error message when it did not succeed.
        finished_at: ISO timestamp (UTC).
        task_id: the Airflow task that ran it (``gate_raw`` for ``quality_gate[raw]``),
            so a task's page can find its record; None in records written before.
    """

    stage: str
    status: str
    seconds: float
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    finished_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    task_id: str | None = None

