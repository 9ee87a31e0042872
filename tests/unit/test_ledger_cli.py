"""``shopflow status``: the human view and the §4 JSON object."""

from __future__ import annotations

import json

from click.testing import CliRunner

from shopflow.cli import cli
from shopflow.ledger import Ledger
from shopflow.settings import Settings


def test_status_on_an_empty_ledger(settings: Settings) -> None:
    result = CliRunner().invoke(cli, ["status", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"production": None, "candidates": [], "events": []}
    human = CliRunner().invoke(cli, ["status"])
    assert "Production: none yet" in human.output


def test_status_answers_what_since_when_why_and_what_it_replaced(settings: Settings) -> None:
    with Ledger(settings.ledger_url) as ledger:
        for version, auc in (("v1", 0.71), ("v2", 0.74)):
            ledger.record_candidate(version=version, family="xgboost",
                                    metrics={"roc_auc": auc, "log_loss": 0.5}, run_id="r")
            ledger.promote(version, actor="alice", reason=f"{version} beats the champion")
        ledger.record_event(kind="deployment", version="v2", reason="hot swap", actor="service")
    human = CliRunner().invoke(cli, ["status"])
    assert human.exit_code == 0, human.output
    assert "Production: v2 (xgboost)" in human.output
    assert "since:" in human.output and "v2 beats the champion" in human.output
    assert "replaced: v1" in human.output
    assert "v1 -> v2" in human.output and "deployment" in human.output
    data = json.loads(CliRunner().invoke(cli, ["status", "--json"]).output)
    assert data["production"]["version"] == "v2"
    assert data["production"]["metrics"]["roc_auc"] == 0.74
    assert {e["kind"] for e in data["events"]} == {"promotion", "deployment"}


def test_status_help() -> None:
    result = CliRunner().invoke(cli, ["status", "--help"])
    assert result.exit_code == 0 and "--json" in result.output
