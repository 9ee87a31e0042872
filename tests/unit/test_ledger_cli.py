"""``shopflow status``: the human view and the §4 JSON object."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from click.testing import CliRunner

from shopflow.cli import cli
from shopflow.ledger import Ledger

if TYPE_CHECKING:
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


def test_status_shows_the_recommender_and_rollback_takes_a_model(settings: Settings) -> None:
    from shopflow.serving.sandbox import build_recommender_sandbox

    with Ledger(settings.ledger_url) as ledger:
        ledger.record_candidate(version="p1", family="xgboost", metrics={"roc_auc": 0.7})
        ledger.promote("p1", actor="alice", reason="first propensity model")
    sandbox = build_recommender_sandbox(settings, ["u1"], models=2)
    first, second = sandbox.versions
    human = CliRunner().invoke(cli, ["status"])
    assert human.exit_code == 0, human.output
    assert "Production: p1 (xgboost)" in human.output
    assert f"Recommender production: {second} (sandbox)" in human.output
    assert "ndcg@10 0.1000" in human.output
    data = json.loads(CliRunner().invoke(cli, ["status", "--json"]).output)
    assert data["production"]["version"] == "p1"
    assert data["recommender"]["production"]["version"] == second
    # roll the recommender back: the propensity model stays where it is
    result = CliRunner().invoke(cli, ["rollback", "--model", "recommender", "--to", first,
                                      "--reason", "lists look wrong", "--actor", "bob"])
    assert result.exit_code == 0, result.output
    assert f"recommender production: {second} -> {first}" in result.output
    with Ledger(settings.ledger_url) as ledger:
        assert ledger.production(model="recommender").version == first
        assert ledger.production().version == "p1"
    missing = CliRunner().invoke(cli, ["rollback", "--model", "recommender", "--to", "nope",
                                       "--reason", "why not"])
    assert missing.exit_code != 0 and "not in the model store" in missing.output
    bad = CliRunner().invoke(cli, ["rollback", "--model", "ranker", "--reason", "x"])
    assert bad.exit_code == 2 and "ranker" in bad.output
