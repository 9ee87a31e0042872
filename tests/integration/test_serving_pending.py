"""A starting service deploys the candidate a run left pending, through gate 3.

A real ``bentoml serve`` on loopback starts over a ledger whose production is v1 and whose
candidate v2 is deploy pending (gate 2 promoted it while no service answered). The service
serves v2 only after loading and checking it, runs gate 3 against itself, and only then
does production move to v2 (a ``deployment`` event by the service's gate 3).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import httpx
import pytest
import yaml

from shopflow.ledger import Ledger
from shopflow.serving.pending import PENDING_ACTOR
from shopflow.serving.prediction_log import PROBE, read_prediction_log
from shopflow.serving.process import ServiceProcess
from shopflow.serving.sandbox import (
    build_sandbox,
    publish_model,
    synthetic_user_features,
    train_tiny_model,
)
from shopflow.settings import load_settings

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_starting_service_runs_gate3_on_the_pending_candidate(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    config = tmp_path / "shopflow.yaml"
    config.write_text(yaml.safe_dump({"serving": {
        "reload_interval": 0.5, "post_deploy_window": 1.0, "max_p99_ms": 2000.0}}))
    settings = load_settings(config, home=home)
    sandbox = build_sandbox(settings, users=60, models=1)
    first = sandbox.versions[-1]
    model, base_rate = train_tiny_model(synthetic_user_features(60, seed=0), seed=7)
    pending = publish_model(settings, model, base_rate=base_rate, promote=False)
    ledger = Ledger(settings.ledger_url)
    ledger.nominate(pending, actor="gate2", reason="beats v1; no service answered",
                    expected_current=first)
    assert ledger.production().version == first

    service = ServiceProcess(settings, config_path=config, inherit_shopflow_env=False)
    service.start(wait=180)
    try:
        deadline = time.monotonic() + 120  # a bound, not a timing assertion
        while ledger.production().version != pending and time.monotonic() < deadline:
            time.sleep(0.5)
        assert ledger.production().version == pending, service.log_tail()
        assert ledger.pending() is None
        deployment = ledger.events(kind="deployment")[-1]
        assert deployment.actor == PENDING_ACTOR
        assert (deployment.version, deployment.previous_version) == (pending, first)
        assert deployment.details["golden_ok"] is True and deployment.details["requests"] > 0
        meta = httpx.get(f"{service.url}/metadata", timeout=10).json()
        assert meta["model_version"] == pending
    finally:
        service.stop()
        ledger.close()
    # gate 3's golden requests and traffic window were probes: logged, never live traffic
    log = read_prediction_log(settings.home_dir)
    assert len(log) >= deployment.details["requests"]
    assert set(log["source"]) == {PROBE}
