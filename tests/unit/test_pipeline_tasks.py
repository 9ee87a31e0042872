"""``run_stage`` decides by type: a permanent error blocks the run (no retry), a glitch is retried.

A permanent error (a gate said no, a dbt test failed, bad params, config or data) is
recorded as ``blocked`` and becomes ``AirflowFailException``, which Airflow never retries;
anything else is recorded as ``failed`` and re-raised as it is, for Airflow to retry.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from pydantic import BaseModel, ValidationError

from shopflow.deploy.rollback import RollbackError
from shopflow.errors import PermanentError, blocks_run
from shopflow.evaluation.gate import ForcedPromotionError
from shopflow.features.training import EntityFrameError
from shopflow.ingest.sources import IngestError
from shopflow.pipeline.params import ParamError
from shopflow.pipeline.runs import read_records
from shopflow.pipeline.stages import STAGES, stage_function
from shopflow.pipeline.tasks import run_stage
from shopflow.pipeline.vocabulary import PipelineBlocked, StageSkipped
from shopflow.quality.result import GateFailed, GateResult
from shopflow.recommend.data import RecommendDataError
from shopflow.settings import ConfigError, Settings
from shopflow.training.split import TrainingDataError
from shopflow.transform import DbtError, DbtTestFailed, NodeResult

if TYPE_CHECKING:
    from collections.abc import Callable

RUN_ID = "manual__2026-01-01T00:00:00+00:00"


def _validation_error() -> ValidationError:
    class Shape(BaseModel):
        rows: int

    try:
        Shape(rows="many")  # type: ignore[arg-type]
    except ValidationError as exc:
        return exc
    raise AssertionError("pydantic accepted a bad value")


def _failed_test() -> NodeResult:
    return NodeResult(unique_id="test.shopflow.not_null_stg_events_user_id",
                      name="not_null_stg_events_user_id", resource_type="test",
                      status="fail", execution_time=0.1, message="Got 3 results", failures=3)


PERMANENT: list[Callable[[], BaseException]] = [
    lambda: GateFailed(GateResult(layer="raw", batch_id="b1", success=False, checks=[])),
    lambda: DbtTestFailed("dbt build failed", failures=[_failed_test()]),
    lambda: ParamError("unknown parameter 'famlies'"),
    lambda: ConfigError("config file not found: x.yaml"),
    _validation_error,
    lambda: PipelineBlocked("no candidate was trained"),
    lambda: RollbackError("no previous production model"),
    lambda: ForcedPromotionError("a forced promotion needs a reason"),
    lambda: TrainingDataError("one cutoff only"),
    lambda: IngestError("events.csv: no user_id column"),
    lambda: EntityFrameError("duplicate entities"),
    lambda: RecommendDataError("no item features"),
]


def _run_raising(monkeypatch: pytest.MonkeyPatch, error: BaseException,
                 **inputs: Any) -> dict[str, Any]:
    def stage(settings: Settings, context: Any, **kwargs: Any) -> dict[str, Any]:
        raise error

    monkeypatch.setattr("shopflow.pipeline.tasks.stage_function", lambda name: stage)
    return run_stage("ingest", dag_id="shopflow_training", params={}, run_id=RUN_ID, **inputs)


@pytest.mark.parametrize("make_error", PERMANENT)
def test_permanent_error_is_blocked_and_never_retried(
    make_error: Callable[[], BaseException], settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    error = make_error()
    assert blocks_run(error)
    with pytest.raises(AirflowFailException) as caught:
        _run_raising(monkeypatch, error)
    assert caught.value.__cause__ is error
    record = read_records(settings, RUN_ID)["ingest"]
    assert record.status == "blocked"
    assert record.error is not None and record.error.startswith(type(error).__name__)


@pytest.mark.parametrize("error", [RuntimeError("database is locked"), OSError("disk busy"),
                                   DbtError("dbt build could not run: connection refused")])
def test_other_errors_are_failed_and_re_raised_for_retry(
    error: BaseException, settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert not blocks_run(error)
    with pytest.raises(type(error)) as caught:
        _run_raising(monkeypatch, error)
    assert caught.value is error
    assert read_records(settings, RUN_ID)["ingest"].status == "failed"


def test_records_name_the_airflow_task_that_ran_the_stage(
    settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Shopflow view's task tab finds ``quality_gate[raw]`` from the task ``gate_raw``."""
    monkeypatch.setattr("shopflow.pipeline.tasks.stage_function",
                        lambda name: lambda settings, context, **kwargs: {"ok": True})
    run_stage("quality_gate", dag_id="shopflow_training", params={}, run_id=RUN_ID,
              task_id="gate_raw", layer="raw")
    record = read_records(settings, RUN_ID)["quality_gate[raw]"]
    assert (record.task_id, record.result) == ("gate_raw", {"ok": True})


def test_permanent_errors_keep_their_old_bases() -> None:
    """``except ValueError`` / ``except RuntimeError`` written before the hierarchy still work."""
    assert issubclass(ParamError, ValueError) and issubclass(ConfigError, ValueError)
    assert issubclass(GateFailed, RuntimeError) and issubclass(PipelineBlocked, RuntimeError)
    assert issubclass(DbtTestFailed, DbtError) and issubclass(DbtTestFailed, PermanentError)
    assert not issubclass(DbtError, PermanentError)


def test_skipped_stage_is_recorded_and_skips_in_airflow(
    settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(AirflowSkipException):
        _run_raising(monkeypatch, StageSkipped("dry run"))
    record = read_records(settings, RUN_ID)["ingest"]
    assert record.status == "skipped" and record.result == {"reason": "dry run"}


def test_failed_dbt_test_blocks_the_dbt_stage(
    settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real ``dbt_layer`` stage: a failed test is a verdict, recorded with its node."""
    def run_dbt(settings: Settings, **kwargs: Any) -> Any:
        raise DbtTestFailed("dbt build failed: 1 node(s) errored or failed",
                            failures=[_failed_test()])

    monkeypatch.setattr("shopflow.transform.run_dbt", run_dbt)
    with pytest.raises(AirflowFailException, match=r"dbt_layer\[staging\] blocked"):
        run_stage("dbt_layer", dag_id="shopflow_training", params={}, run_id=RUN_ID,
                  layer="staging")
    record = read_records(settings, RUN_ID)["dbt_layer[staging]"]
    assert record.status == "blocked"
    assert record.result["failures"] == [
        "test not_null_stg_events_user_id: fail Got 3 results"]


class _FakeDbtRunner:
    """dbt's ``dbtRunner`` answering with fixed node results (no warehouse needed)."""

    nodes: list[tuple[str, str, str]] = []

    def __init__(self, callbacks: list[Any]) -> None:
        pass

    def invoke(self, args: list[str]) -> Any:
        results = [SimpleNamespace(node=SimpleNamespace(unique_id=f"{kind}.shopflow.{name}",
                                                        name=name, resource_type=kind),
                                   status=status, execution_time=0.1, message="boom",
                                   failures=1)
                   for kind, name, status in self.nodes]
        return SimpleNamespace(success=False, exception=None,
                               result=SimpleNamespace(results=results))


@pytest.mark.parametrize(("nodes", "permanent"), [
    ([("model", "stg_events", "success"), ("test", "not_null_user_id", "fail")], True),
    ([("unit_test", "test_sessionize", "fail")], True),
    ([("model", "stg_events", "error"), ("test", "not_null_user_id", "skipped")], False),
    ([("test", "not_null_user_id", "error")], False),  # the test could not run
])
def test_run_dbt_tells_a_failed_test_from_an_error(
    nodes: list[tuple[str, str, str]], permanent: bool, settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dbt.cli.main

    from shopflow.transform import run_dbt

    monkeypatch.setattr(_FakeDbtRunner, "nodes", nodes)
    monkeypatch.setattr(dbt.cli.main, "dbtRunner", _FakeDbtRunner)
    with pytest.raises(DbtError) as caught:
        run_dbt(settings, command="build", select="staging")
    assert isinstance(caught.value, DbtTestFailed) is permanent
    assert blocks_run(caught.value) is permanent


def test_every_stage_name_points_at_a_function_in_a_stage_module() -> None:
    """DAG task -> registry -> function: the registry is the only indirection."""
    for name, function in STAGES.items():
        assert stage_function(name) is function
        assert function.__module__.rsplit(".", 1)[-1].endswith("_stages"), name
    with pytest.raises(KeyError, match="unknown stage 'nope'"):
        stage_function("nope")


def test_every_stage_a_dag_names_is_in_the_registry() -> None:
    import re
    from pathlib import Path

    dags = Path(__file__).resolve().parents[2] / "dags"
    named = {m for path in dags.glob("*.py")
             for m in re.findall(r"\bstage\(\"(\w+)\"", path.read_text())}
    assert named and named <= set(STAGES), sorted(named - set(STAGES))
