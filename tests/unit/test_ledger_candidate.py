"""Deploy pending in the ledger: gate 2 nominates a candidate, gate 3 moves production."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from shopflow.ledger import CandidateChangedError, Ledger, ProductionChangedError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from shopflow.settings import Settings


@pytest.fixture
def ledger(settings: Settings) -> Iterator[Ledger]:
    with Ledger(settings.ledger_url) as opened:
        yield opened


def test_a_nominated_candidate_waits_and_production_does_not_move(ledger: Ledger) -> None:
    ledger.promote("v1", actor="t", reason="first")
    assert ledger.nominate("v2", actor="gate2", reason="beats v1",
                           expected_current="v1") == "v1"
    assert ledger.production().version == "v1"
    pending = ledger.pending()
    assert (pending.version, pending.previous_version, pending.reason) == ("v2", "v1", "beats v1")
    promotion = ledger.events(kind="promotion")[-1]
    assert promotion.version == "v2" and promotion.details["alias"] == "candidate"
    assert [e.version for e in ledger.production_history()] == ["v1"]
    status = json.loads(json.dumps(ledger.status()))
    assert status["pending"]["version"] == "v2"
    assert status["pending"]["production_version"] == "v1"
    assert status["production"]["version"] == "v1"


def test_gate3_accepting_moves_production_and_clears_the_candidate(ledger: Ledger) -> None:
    ledger.promote("v1", actor="t", reason="first")
    ledger.nominate("v2", actor="gate2", reason="beats v1")
    assert ledger.accept_candidate("v2", actor="gate3", reason="served well",
                                   details={"requests": 40}) == "v1"
    assert ledger.production().version == "v2"
    assert ledger.production().previous_version == "v1"
    assert ledger.pending() is None
    assert "pending" not in ledger.status()
    deployment = ledger.events(kind="deployment")[-1]
    assert (deployment.version, deployment.previous_version) == ("v2", "v1")
    assert deployment.details == {"requests": 40, "alias": "production"}
    assert [e.version for e in ledger.production_history()] == ["v1", "v2"]
    assert ledger.production_at(deployment.at) == "v2"
    assert ledger.previous_production() == "v1"  # rollback target after a deploy


def test_gate3_failing_drops_the_candidate_and_production_stays(ledger: Ledger) -> None:
    ledger.promote("v1", actor="t", reason="first")
    ledger.nominate("v2", actor="gate2", reason="beats v1")
    assert ledger.drop_candidate("v2", actor="gate3", reason="gate 3 failed: p99",
                                 details={"stage": "post_deploy"})
    assert ledger.pending() is None and ledger.production().version == "v1"
    rejection = ledger.events(kind="rejection")[-1]
    assert rejection.version == "v2" and rejection.details["stage"] == "post_deploy"
    assert not ledger.drop_candidate("v2", actor="gate3", reason="again")  # nothing left


def test_candidate_moves_are_compare_and_set(ledger: Ledger) -> None:
    ledger.promote("v1", actor="t", reason="first")
    with pytest.raises(ProductionChangedError):
        ledger.nominate("v2", actor="gate2", reason="stale", expected_current="v0")
    assert ledger.pending() is None
    ledger.nominate("v2", actor="gate2", reason="beats v1")
    ledger.nominate("v3", actor="gate2", reason="a later run beats v1 too")
    with pytest.raises(CandidateChangedError, match="candidate is 'v3', not 'v2'"):
        ledger.accept_candidate("v2", actor="gate3", reason="late")
    assert ledger.production().version == "v1"
    assert ledger.accept_candidate("v3", actor="gate3", reason="ok") == "v1"


def test_a_first_model_can_be_pending_with_nothing_in_production(ledger: Ledger) -> None:
    assert ledger.nominate("v1", actor="gate2", reason="clears the floors",
                           expected_current=None) is None
    assert ledger.production() is None and ledger.pending().version == "v1"
    assert ledger.accept_candidate("v1", actor="gate3", reason="ok") is None
    assert ledger.production().version == "v1"


def test_candidates_are_per_model(ledger: Ledger) -> None:
    ledger.nominate("r1", actor="gate2", reason="recommender", model="recommender")
    assert ledger.pending() is None
    assert ledger.pending(model="recommender").version == "r1"
    assert "recommender" in ledger.models()
