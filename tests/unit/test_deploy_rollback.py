"""Rollback through the real ledger and model store, as a function and as the CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from shopflow.cli import cli
from shopflow.deploy import RollbackError, rollback
from shopflow.ledger import Ledger
from shopflow.serving.sandbox import publish_model, synthetic_user_features, train_tiny_model

if TYPE_CHECKING:
    from shopflow.settings import Settings


def _publish(settings: Settings, seed: int, *, promote: bool = True) -> str:
    model, base_rate = train_tiny_model(synthetic_user_features(40, seed=seed), seed=seed)
    return publish_model(settings, model, base_rate=base_rate, promote=promote,
                         reason=f"model {seed}")


def test_rollback_needs_a_reason_and_a_target(settings: Settings) -> None:
    with pytest.raises(RollbackError, match="reason"):
        rollback(settings, reason=" ", actor="me")
    with pytest.raises(RollbackError, match="nothing was ever in production"):
        rollback(settings, reason="why", actor="me")
    only = _publish(settings, 1)
    with pytest.raises(RollbackError, match=f"production is {only}"):
        rollback(settings, reason="why", actor="me")
    with pytest.raises(RollbackError, match="already in production"):
        rollback(settings, to_version=only, reason="why", actor="me")
    with pytest.raises(RollbackError, match="not in the model store"):
        rollback(settings, to_version="nosuchversion", reason="why", actor="me")


def test_rollback_to_previous_then_never_bounces_back(settings: Settings) -> None:
    first = _publish(settings, 1)
    second = _publish(settings, 2)
    third = _publish(settings, 3)
    result = rollback(settings, reason="third is bad", actor="oncall")
    assert (result.from_version, result.to_version) == (third, second)
    ledger = Ledger(settings.ledger_url)
    assert ledger.production().version == second
    event = ledger.events(kind="rollback")[-1]
    assert (event.version, event.previous_version, event.actor, event.reason) == (
        second, third, "oncall", "third is bad")
    assert event.details["from_version"] == third
    # rolling back again skips the model we just left (third), back to the first
    assert rollback(settings, reason="second too", actor="oncall").to_version == first


def test_rollback_to_a_named_version(settings: Settings) -> None:
    first = _publish(settings, 1)
    _publish(settings, 2)
    _publish(settings, 3)
    assert rollback(settings, to_version=first, reason="known good", actor="me").to_version == first


def test_cli_rollback(settings: Settings) -> None:
    runner = CliRunner()
    missing_reason = runner.invoke(cli, ["rollback"])
    assert missing_reason.exit_code == 2 and "--reason" in missing_reason.output
    nothing = runner.invoke(cli, ["rollback", "--reason", "x"])
    assert nothing.exit_code == 1 and "nothing was ever in production" in nothing.output
    first = _publish(settings, 1)
    second = _publish(settings, 2)
    done = runner.invoke(cli, ["rollback", "--reason", "bad deploy", "--actor", "ann"])
    assert done.exit_code == 0, done.output
    assert f"{second} -> {first}" in done.output
    assert Ledger(settings.ledger_url).production().version == first
    assert runner.invoke(cli, ["rollback", "--help"]).exit_code == 0


def test_serve_help() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0 and "--port" in result.output


def test_rollback_only_from_the_version_the_caller_saw(settings: Settings) -> None:
    _publish(settings, 1)
    second = _publish(settings, 2)
    third = _publish(settings, 3)
    # someone else already rolled the bad third model back
    assert rollback(settings, reason="third is bad", actor="gate4",
                    from_version=third).to_version == second
    # a second rollback of the same model is refused, not applied to the good one
    with pytest.raises(RollbackError, match=f"is {second}, not {third}"):
        rollback(settings, reason="third is bad", actor="oncall", from_version=third)
    ledger = Ledger(settings.ledger_url)
    assert ledger.production().version == second
    assert len(ledger.events(kind="rollback")) == 1


def test_a_retried_rollback_of_one_run_rolls_back_once(settings: Settings) -> None:
    _publish(settings, 1)
    second = _publish(settings, 2)
    third = _publish(settings, 3)
    once = rollback(settings, reason="bad", actor="airflow", run_id="manual__r1")
    again = rollback(settings, reason="bad", actor="airflow", run_id="manual__r1")
    assert (once.from_version, once.to_version) == (third, second)
    assert again == once
    ledger = Ledger(settings.ledger_url)
    assert ledger.production().version == second
    assert [e.details.get("run_id") for e in ledger.events(kind="rollback")] == ["manual__r1"]


def test_rollback_raises_a_rollback_alert(settings: Settings) -> None:
    from alert_sinks import WebhookReceiver

    receiver = WebhookReceiver().start()
    try:
        hooked = settings.model_copy(update={"alerts": settings.alerts.model_copy(
            update={"webhook_url": receiver.url})})
        _publish(settings, 1)
        second = _publish(settings, 2)
        rollback(hooked, reason="looks wrong", actor="oncall")
    finally:
        receiver.stop()
    (body,) = receiver.bodies
    assert body["event"] == "rollback"
    assert body["details"]["from_version"] == second
    assert "looks wrong" in body["summary"]
