"""Recording gate 2's decision: promotion, rejection, and a decision gone stale."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shopflow.evaluation.gate import Check, GateDecision
from shopflow.ledger import Ledger
from shopflow.training.pipeline import record_decision

if TYPE_CHECKING:
    from shopflow.settings import Settings


def _decision(version: str, *, promote: bool, production: str | None,
              forced: bool = False) -> GateDecision:
    return GateDecision(
        promote=promote, forced=forced, challenger_version=version,
        challenger_family="lightgbm", reference_role="champion" if production else "baseline",
        reference_version=production or "base", primary_metric="roc_auc",
        checks=[Check(name="roc_auc beats champion", metric="roc_auc", challenger=0.8,
                      reference=0.7, limit=0.002, passed=promote)],
        reason=f"{version} {'beats' if promote else 'does not beat'} the champion",
        explanation="a paragraph", actor="tester", production_version=production,
    )


def test_promotion_and_rejection_are_recorded_with_details(settings: Settings) -> None:
    assert record_decision(settings, _decision("v1", promote=True, production=None),
                           run_id="r1") is None
    assert record_decision(settings, _decision("v2", promote=False, production="v1").to_dict(),
                           run_id="r2") is None
    with Ledger(settings.ledger_url) as ledger:
        assert ledger.production().version == "v1"
        rejection = ledger.events(kind="rejection")[-1]
    assert rejection.details["run_id"] == "r2" and rejection.details["gate_passed"] is False
    assert rejection.details["checks"][0]["metric"] == "roc_auc"


def test_a_stale_decision_does_not_overwrite_a_newer_promotion(settings: Settings) -> None:
    record_decision(settings, _decision("v1", promote=True, production=None), run_id="r1")
    # two runs both decided against v1; the first to record wins
    assert record_decision(settings, _decision("v2", promote=True, production="v1"),
                           run_id="r2") == "v1"
    assert record_decision(settings, _decision("v3", promote=True, production="v1"),
                           run_id="r3") is None
    with Ledger(settings.ledger_url) as ledger:
        assert ledger.production().version == "v2"
        stale = ledger.events(kind="rejection")[-1]
    assert stale.version == "v3" and stale.details["stale_decision"] is True
    assert "another run moved it" in stale.reason


def test_a_forced_promotion_goes_through_whatever_holds_production(settings: Settings) -> None:
    record_decision(settings, _decision("v1", promote=True, production=None), run_id="r1")
    record_decision(settings, _decision("v2", promote=True, production="v0", forced=True),
                    run_id="r2")
    with Ledger(settings.ledger_url) as ledger:
        assert ledger.production().version == "v2"
        assert ledger.events(kind="promotion")[-1].details["forced"] is True
