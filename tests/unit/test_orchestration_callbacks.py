"""A task's final failure is written to the ledger under the model it worked for."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shopflow.ledger import Ledger
from shopflow.orchestration.callbacks import failure_reason, record_failure

if TYPE_CHECKING:
    from shopflow.settings import Settings


def _events(settings: Settings, model: str) -> list:
    with Ledger(settings.ledger_url) as ledger:
        return ledger.events(model=model)


def test_failed_training_task_is_a_propensity_rejection_naming_task_and_error(
    settings: Settings,
) -> None:
    event_id = record_failure(params={}, dag_id="shopflow_training", run_id="r1",
                              task_id="gate_raw", error=RuntimeError("30% null user ids"))
    assert event_id is not None
    (event,) = _events(settings, "propensity")
    assert event.kind == "rejection" and event.version is None
    assert event.reason == failure_reason("shopflow_training", "gate_raw",
                                          RuntimeError("30% null user ids"))
    assert "gate_raw" in event.reason and "30% null user ids" in event.reason
    assert _events(settings, "recommender") == []


def test_failed_recommender_task_is_recorded_for_the_recommender(settings: Settings) -> None:
    record_failure(params={}, dag_id="shopflow_training", run_id="r2",
                   task_id="train_recommender", error="out of memory")
    (event,) = _events(settings, "recommender")
    assert event.details["task_id"] == "train_recommender"
    assert _events(settings, "propensity") == []
