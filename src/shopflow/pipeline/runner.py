"""Run a Shopflow DAG in this process, through Airflow, with no scheduler or server.

``shopflow pipeline run`` uses Airflow's own ``dag.test()``: the real DAG file, the real
params validation, dependency resolution, dynamic task mapping, XCom and callbacks, with
a SQLite metadata database under ``settings.airflow_home``. Airflow reads its
configuration when first imported, so the environment is set here *before* importing it,
and a process can host runs of one Airflow home only.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shopflow.pipeline.params import resolve_params, specs_for
from shopflow.pipeline.runs import read_records

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from shopflow.pipeline.vocabulary import StageRecord
    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

TRAINING_DAG_ID = "shopflow_training"


class PipelineRunError(RuntimeError):
    """The run could not start (DAG import error, Airflow already set up for another home)."""


@dataclass
class TaskOutcome:
    """One task instance of the run, as Airflow recorded it."""

    task_id: str
    map_index: int
    state: str
    seconds: float | None
    record: StageRecord | None = None

    @property
    def label(self) -> str:
        return self.task_id if self.map_index < 0 else f"{self.task_id}[{self.map_index}]"


@dataclass
class PipelineRun:
    """What ``shopflow pipeline run`` reports.

    Attributes:
        dag_id: the DAG that ran.
        run_id: Airflow's run id.
        state: the DAG run's final state (``success`` or ``failed``).
        seconds: wall time of the whole run, Airflow start-up included.
        tasks: every task instance in run order.
        records: the stage records the run wrote (by stage label).
    """

    dag_id: str
    run_id: str
    state: str
    seconds: float
    tasks: list[TaskOutcome] = field(default_factory=list)
    records: dict[str, StageRecord] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.state == "success"

    @property
    def failed_tasks(self) -> list[TaskOutcome]:
        """Task instances that failed (a family can fail while the run goes on)."""
        return [t for t in self.tasks if t.state == "failed"]

    @property
    def blocked(self) -> list[StageRecord]:
        """Stages where a gate said no."""
        return [r for r in self.records.values() if r.status == "blocked"]


def airflow_environment(settings: Settings, *, dags_folder: Path | None = None) -> dict[str, str]:
    """The variables that make Airflow use Shopflow's home, metadata DB and DAGs.

    Set before ``import airflow``; values already in the environment for ``AIRFLOW_HOME``
    and the metadata DB are replaced so a run never writes into someone else's Airflow.
    """
    home = settings.airflow_home
    folder = (dags_folder or default_dags_folder()).resolve()
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "SHOPFLOW_HOME": str(settings.home_dir),
    }


def default_dags_folder() -> Path:
    """The repository's ``dags/`` (``SHOPFLOW_DAGS_FOLDER`` overrides it)."""
    override = os.environ.get("SHOPFLOW_DAGS_FOLDER")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[3] / "dags"


def _prepare_airflow(settings: Settings, dags_folder: Path | None) -> None:
    env = airflow_environment(settings, dags_folder=dags_folder)
    if "airflow" in sys.modules and os.environ.get("AIRFLOW_HOME") != env["AIRFLOW_HOME"]:
        raise PipelineRunError(
            "Airflow is already imported in this process with AIRFLOW_HOME="
            f"{os.environ.get('AIRFLOW_HOME')!r}; run the pipeline in a fresh process "
            f"(`shopflow pipeline run`) to use {env['AIRFLOW_HOME']}"
        )
    folder = Path(env["AIRFLOW__CORE__DAGS_FOLDER"])
    if not (folder / f"{TRAINING_DAG_ID}.py").is_file():
        raise PipelineRunError(
            f"DAG folder {folder} has no {TRAINING_DAG_ID}.py; set SHOPFLOW_DAGS_FOLDER"
        )
    settings.airflow_home.mkdir(parents=True, exist_ok=True)
    os.environ.update(env)


def load_dag(dag_id: str, dags_folder: Path | None = None) -> Any:
    """Parse the DAG folder and return one DAG, or fail with the import errors.

    Raises:
        PipelineRunError: the DAG file did not import, or the DAG is not there.
    """
    from airflow.dag_processing.dagbag import DagBag

    folder = (dags_folder or default_dags_folder()).resolve()
    bag = DagBag(dag_folder=str(folder))
    if dag_id not in bag.dags:
        errors = "\n".join(f"{path}: {err}" for path, err in bag.import_errors.items())
        raise PipelineRunError(
            f"DAG {dag_id!r} not found in {folder}" + (f"; import errors:\n{errors}" if errors
                                                       else "")
        )
    return bag.dags[dag_id]


def run_dag(
    settings: Settings,
    *,
    dag_id: str = TRAINING_DAG_ID,
    params: Mapping[str, Any] | None = None,
    dags_folder: Path | None = None,
    quiet: bool = True,
) -> PipelineRun:
    """Run one Shopflow DAG end to end in this process (``dag.test()``).

    Tasks do not retry here (a person is watching; the scheduler retries in production).

    Args:
        settings: whose ``airflow_home`` and ``home`` the run uses.
        dag_id: which DAG (default: ``shopflow_training``).
        params: run params (the trigger form's values); unknown names are an error.
        dags_folder: where the DAG files are (default: the repository's ``dags/``).
        quiet: send Airflow's own log lines to a file under ``airflow_home/logs`` and
            print one progress line per finished stage instead.

    Raises:
        shopflow.pipeline.params.ParamError: unknown or inconsistent params.
        PipelineRunError: Airflow could not be set up or the DAG not loaded.
    """
    resolve_params(params, specs_for(dag_id))  # fail before Airflow spends seconds starting
    conf = {k: v for k, v in dict(params or {}).items()}
    started = time.perf_counter()
    _prepare_airflow(settings, dags_folder)

    log_path = settings.airflow_home / "logs" / f"{dag_id}-{time.strftime('%Y%m%dT%H%M%S')}.log"
    with _output_to(log_path, settings, since=time.time()) if quiet else nullcontext():
        from airflow.utils import db

        logger.info("pipeline: preparing the Airflow metadata DB in %s", settings.airflow_home)
        db.initdb()
        dag = load_dag(dag_id, dags_folder)
        for task in dag.tasks:
            task.retries = 0
        logger.info("pipeline: running %s with params %s", dag_id, conf or "(defaults)")
        dag_run = dag.test(run_conf=conf)
    seconds = time.perf_counter() - started
    return collect_run(settings, dag_id=dag_id, run_id=dag_run.run_id,
                       state=str(getattr(dag_run.state, "value", dag_run.state)), seconds=seconds)


@contextmanager
def _output_to(log_path: Path, settings: Settings, *, since: float) -> Iterator[None]:
    """Send Airflow's console output to ``log_path``; print one line per finished stage.

    ``dag.test()`` logs every task line to the console; a person running the pipeline
    wants progress and the summary, and the full log when something went wrong. The file
    descriptors are swapped (Airflow's handlers hold the original streams), and a thread
    watches the run folder for stage records as tasks finish.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    stop = threading.Event()

    def say(text: str) -> None:
        os.write(saved_out, (text + "\n").encode())

    def watch() -> None:
        seen: set[Path] = set()
        runs = settings.reports_dir / "runs"
        while True:
            finished = stop.wait(0.5)
            for path in sorted(runs.glob("*/stages/*.json")) if runs.is_dir() else []:
                if path in seen or path.stat().st_mtime < since:
                    continue
                seen.add(path)
                try:
                    record = json.loads(path.read_text())
                    say(f"  [{time.time() - since:6.1f}s] {record['stage']:<28} "
                        f"{record['status']:<8} {record['seconds']:6.1f}s")
                except (ValueError, KeyError, OSError):
                    continue
            if finished:
                return

    say(f"Airflow's log: {log_path}")
    watcher = threading.Thread(target=watch, name="shopflow-progress", daemon=True)
    with log_path.open("ab") as log_file:
        os.dup2(log_file.fileno(), 1)
        os.dup2(log_file.fileno(), 2)
        watcher.start()
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            stop.set()
            watcher.join(timeout=10)
            os.close(saved_out)
            os.close(saved_err)


def collect_run(settings: Settings, *, dag_id: str, run_id: str, state: str,
                seconds: float) -> PipelineRun:
    """Gather task states (from Airflow's DB) and stage records (from the run folder)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    records = read_records(settings, run_id)
    tasks: list[TaskOutcome] = []
    with create_session() as session:
        rows = session.scalars(
            select(TaskInstance)
            .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
            .order_by(TaskInstance.start_date.is_(None), TaskInstance.start_date,
                      TaskInstance.map_index)
        ).all()
        for ti in rows:
            tasks.append(TaskOutcome(
                task_id=ti.task_id,
                map_index=ti.map_index,
                state=str(getattr(ti.state, "value", ti.state) or "none"),
                seconds=ti.duration,
            ))
    _attach_records(tasks, records)
    return PipelineRun(dag_id=dag_id, run_id=run_id, state=state, seconds=seconds,
                       tasks=tasks, records=records)


def _attach_records(tasks: list[TaskOutcome], records: Mapping[str, StageRecord]) -> None:
    """Pair each task instance with the stage record it wrote."""
    plan = records.get("plan")
    families = list((plan.result or {}).get("families", [])) if plan else []
    for outcome in tasks:
        label = _RECORD_OF.get(outcome.task_id, outcome.task_id)
        if outcome.task_id == "train_candidate" and 0 <= outcome.map_index < len(families):
            label = f"train_candidate[{families[outcome.map_index]}]"
        outcome.record = records.get(label)


# task id -> the label of the stage record it writes, where the two differ
_RECORD_OF = {
    "materialize_incremental": "feast_materialize",
    "signal_retraining": "drift_verdict",
    "gate_raw": "quality_gate[raw]",
    "gate_staging": "quality_gate[staging]",
    "gate_marts": "quality_gate[marts]",
    "dbt_staging": "dbt_layer[staging]",
    "dbt_intermediate": "dbt_layer[intermediate]",
    "dbt_marts": "dbt_layer[marts]",
}
