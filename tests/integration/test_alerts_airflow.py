"""Alerts from real Airflow runs (``dag.test()`` through ``shopflow pipeline run``).

A rollback run with nothing to roll back to is blocked: the stage raises a
``gate_blocked`` alert (and the task's notifier stays quiet: one alert per cause); a run
whose ledger is unreachable crashes and the notifier raises ``run_failed``; a rollback
run that works raises a ``rollback`` alert. All to a real HTTP receiver on loopback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

from alert_sinks import WebhookReceiver
from shopflow.ledger import Ledger
from shopflow.serving.sandbox import publish_model, synthetic_user_features, train_tiny_model

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from shopflow.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


def _rollback_run(home: Path, url: str, reason: str, **env_extra: str
                  ) -> tuple[int, dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOPFLOW_", "AIRFLOW"))}
    env.update({"SHOPFLOW_HOME": str(home), "SHOPFLOW_ALERTS__WEBHOOK_URL": url, **env_extra})
    proc = subprocess.run(
        [sys.executable, "-m", "shopflow.cli", "pipeline", "run", "--dag", "shopflow_rollback",
         "--param", f"reason={reason}", "--json"],
        env=env, capture_output=True, text=True, timeout=300, cwd=home.parent,
    )
    start = proc.stdout.find("{\n")
    assert start >= 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.returncode, json.loads(proc.stdout[start:])


def test_a_blocked_run_alerts_gate_blocked_once(
    settings: Settings, shopflow_home: Path, webhook: WebhookReceiver,
) -> None:
    code, summary = _rollback_run(shopflow_home, webhook.url, "nothing to go back to")
    assert code != 0 and summary["state"] == "failed"
    assert webhook.events() == ["gate_blocked"]
    (body,) = webhook.bodies
    assert "nothing was ever in production" in body["summary"]
    assert body["details"]["stage"] == "rollback"


def test_a_crashed_run_alerts_run_failed(shopflow_home: Path, webhook: WebhookReceiver) -> None:
    code, summary = _rollback_run(shopflow_home, webhook.url, "ledger is down",
                                  SHOPFLOW_DATABASE_URL="postgresql://nobody@127.0.0.1:9/none")
    assert code != 0 and summary["state"] == "failed"
    assert webhook.events() == ["run_failed"]
    (body,) = webhook.bodies
    assert body["details"]["dag_id"] == "shopflow_rollback"
    assert body["details"]["task_id"] == "rollback"
    assert "shopflow_rollback run" in body["summary"] and "failed at rollback" in body["summary"]


def test_a_rollback_run_alerts_once(settings: Settings, shopflow_home: Path,
                                    webhook: WebhookReceiver) -> None:
    for seed in (1, 2):
        model, base_rate = train_tiny_model(synthetic_user_features(40, seed=seed), seed=seed)
        publish_model(settings, model, base_rate=base_rate, promote=True, reason=f"m{seed}")
    code, summary = _rollback_run(shopflow_home, webhook.url, "second looks wrong")
    assert code == 0, summary
    assert webhook.events() == ["rollback"]
    with Ledger(settings.ledger_url) as ledger:
        (event,) = ledger.events(kind="rollback")
    assert event.details["run_id"] == summary["run_id"].replace(":", "_").replace("+", "_")
