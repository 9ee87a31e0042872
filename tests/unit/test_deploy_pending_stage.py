"""With no service answering, a promoted model's deploy is pending, not a green success.

The training DAG's deploy and gate 3 stages run through the task runner (as in Airflow):
the deploy reports pending, gate 3 stops the run as blocked with ``DeployPending``, a
``deploy_pending`` alert reaches a real HTTP receiver, the summary says DEPLOY PENDING, and
the ledger keeps production and shows the candidate as pending.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import pytest
from airflow.sdk.exceptions import AirflowFailException

from alert_sinks import WebhookReceiver
from shopflow.ledger import Ledger
from shopflow.pipeline.runner import PipelineRun, TaskOutcome
from shopflow.pipeline.runs import read_records
from shopflow.pipeline.summary import deploy_pending, format_summary, summary_dict
from shopflow.pipeline.tasks import run_stage
from shopflow.serving.sandbox import publish_model, synthetic_user_features, train_tiny_model

if TYPE_CHECKING:
    from shopflow.settings import Settings

RUN_ID = "manual__2026-11-30T10:00:00+00:00"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_no_service_leaves_the_deploy_pending(settings: Settings,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    receiver = WebhookReceiver().start()
    monkeypatch.setenv("SHOPFLOW_SERVING__PORT", str(_closed_port()))
    monkeypatch.setenv("SHOPFLOW_ALERTS__WEBHOOK_URL", receiver.url)
    frame = synthetic_user_features(40, seed=1)
    model, base_rate = train_tiny_model(frame, seed=1)
    first = publish_model(settings, model, base_rate=base_rate, promote=True)
    model, base_rate = train_tiny_model(frame, seed=2)
    second = publish_model(settings, model, base_rate=base_rate, promote=False)
    with Ledger(settings.ledger_url) as ledger:
        ledger.nominate(second, actor="gate2", reason="beats it", expected_current=first)
    registered = {"promoted": True, "version": second, "previous_version": first,
                  "reason": "beats it"}
    try:
        deployed = run_stage("deploy", dag_id="shopflow_training", params={}, run_id=RUN_ID,
                             registered=registered)
        assert deployed["pending"] is True and deployed["version"] == second
        with pytest.raises(AirflowFailException, match="deploy pending"):
            run_stage("post_deploy_check", dag_id="shopflow_training", params={},
                      run_id=RUN_ID, deployed=deployed)
    finally:
        receiver.stop()
    assert receiver.events() == ["deploy_pending"]
    assert second in receiver.bodies[0]["summary"]

    records = read_records(settings, RUN_ID)
    assert records["post_deploy_check"].status == "blocked"
    tasks = [TaskOutcome("deploy", -1, "success", 0.1, records["deploy"]),
             TaskOutcome("post_deploy_check", -1, "failed", 0.0, records["post_deploy_check"])]
    run = PipelineRun(dag_id="shopflow_training", run_id=RUN_ID, state="failed", seconds=1.0,
                      tasks=tasks, records=records)
    pending = deploy_pending(run)
    assert pending is not None
    assert (pending["version"], pending["production_version"]) == (second, first)
    data = summary_dict(run)
    assert data["gates"]["post_deploy_check"]["status"] == "pending"
    text = format_summary(run)
    assert "DEPLOY PENDING" in text and "shopflow deploy --pending" in text
    with Ledger(settings.ledger_url) as ledger:
        assert ledger.production().version == first
        assert ledger.status()["pending"]["version"] == second


def test_deploy_cli_says_what_is_pending_and_waits_for_a_service(
    settings: Settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from click.testing import CliRunner

    from shopflow.cli import cli

    monkeypatch.setenv("SHOPFLOW_SERVING__PORT", str(_closed_port()))
    runner = CliRunner()
    nothing = runner.invoke(cli, ["deploy", "--pending"])
    assert nothing.exit_code == 0 and "nothing is deploy pending" in nothing.output
    model, base_rate = train_tiny_model(synthetic_user_features(40, seed=1), seed=1)
    waiting = publish_model(settings, model, base_rate=base_rate, promote=False)
    with Ledger(settings.ledger_url) as ledger:
        ledger.nominate(waiting, actor="gate2", reason="first model", expected_current=None)
    no_service = runner.invoke(cli, ["deploy"])
    assert no_service.exit_code == 4, no_service.output
    assert f"candidate {waiting} is deploy pending" in no_service.output
    assert "no model service answers" in no_service.output
    status = runner.invoke(cli, ["status"])
    assert f"Deploy pending: {waiting}" in status.output
    with Ledger(settings.ledger_url) as ledger:
        assert ledger.production() is None and ledger.pending().version == waiting
