"""The ledger on SQLite: candidates, events, the production alias, the §4 status object."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from shopflow.ledger import Ledger, LedgerError

if TYPE_CHECKING:
    from shopflow.settings import Settings


@pytest.fixture
def ledger(settings: Settings) -> Ledger:
    with Ledger(settings.ledger_url) as led:
        yield led


def _candidate(ledger: Ledger, version: str, family: str = "xgboost", auc: float = 0.8) -> None:
    ledger.record_candidate(
        version=version, family=family, metrics={"roc_auc": auc, "log_loss": 0.4},
        params={"eta": 0.1}, feature_service="propensity_v1", run_id="run-1",
        data_window=("2026-01-01", "2026-02-01"), data_fingerprint="abc",
        config_hash="cfg", code_version="sha",
    )


def test_empty_ledger_has_no_production_and_a_valid_status(ledger: Ledger) -> None:
    assert ledger.production() is None
    assert ledger.previous_production() is None
    assert ledger.status() == {"production": None, "candidates": [], "events": []}


def test_promotion_moves_alias_and_records_history(ledger: Ledger) -> None:
    _candidate(ledger, "v1", "baseline", 0.7)
    _candidate(ledger, "v2", "lightgbm", 0.8)
    assert ledger.promote("v1", actor="alice", reason="first model") is None
    assert ledger.promote("v2", actor="bob", reason="beats v1", details={"delta": 0.1}) == "v1"

    prod = ledger.production()
    assert prod is not None
    assert (prod.version, prod.family, prod.previous_version) == ("v2", "lightgbm", "v1")
    assert prod.metrics["roc_auc"] == 0.8
    assert prod.reason == "beats v1"

    status = json.loads(json.dumps(ledger.status()))  # JSON-serialisable as printed
    assert status["production"]["version"] == "v2"
    assert {"version", "family", "metrics", "since"} <= set(status["production"])
    assert [c["version"] for c in status["candidates"]] == ["v2", "v1"]
    assert [(e["kind"], e["version"]) for e in status["events"]] == [
        ("promotion", "v1"), ("promotion", "v2")]
    assert all({"kind", "at", "version", "reason"} <= set(e) for e in status["events"])
    assert status["events"][1]["details"] == {"delta": 0.1}
    assert status["events"][1]["actor"] == "bob"


def test_rollback_goes_back_and_never_bounces_to_a_rolled_back_model(ledger: Ledger) -> None:
    for version in ("v1", "v2", "v3"):
        _candidate(ledger, version)
        ledger.promote(version, actor="shopflow", reason=f"promote {version}")
    assert ledger.previous_production() == "v2"
    left = ledger.record_rollback(to_version="v2", reason="error rate 5%", actor="gate3")
    assert left == "v3"
    assert ledger.production().version == "v2"
    # v3 was rolled back away from: the next rollback target is v1, not v3
    assert ledger.previous_production() == "v1"
    rollback = ledger.events(kind="rollback")[-1]
    assert (rollback.version, rollback.previous_version, rollback.actor) == ("v2", "v3", "gate3")


def test_events_validate_kind_and_reason_and_keep_nan_out_of_json(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="unknown ledger event kind"):
        ledger.record_event(kind="promoted", version="v1", reason="x")
    with pytest.raises(LedgerError, match="needs a reason"):
        ledger.record_event(kind="rejection", version="v1", reason="  ")
    ledger.record_candidate(version="v9", family="torch", metrics={"roc_auc": float("nan")})
    assert ledger.candidate("v9").metrics == {"roc_auc": None}
    ledger.update_candidate_metrics("v9", {"test_roc_auc": 0.75})
    assert ledger.candidate("v9").metrics == {"roc_auc": None, "test_roc_auc": 0.75}
    with pytest.raises(LedgerError, match="no candidate"):
        ledger.update_candidate_metrics("nope", {"x": 1})


def test_production_at_answers_which_model_served_when(ledger: Ledger) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    _candidate(ledger, "v1")
    ledger.promote("v1", actor="a", reason="first")
    middle = datetime.now(UTC)
    _candidate(ledger, "v2")
    ledger.promote("v2", actor="a", reason="second")
    assert ledger.production_at(before) is None
    assert ledger.production_at(middle) == "v1"
    assert ledger.production_at(datetime.now(UTC)) == "v2"


def test_a_second_ledger_on_the_same_file_sees_the_same_state(settings: Settings) -> None:
    with Ledger(settings.ledger_url) as first:
        _candidate(first, "v1")
        first.promote("v1", actor="a", reason="r")
    with Ledger(settings.ledger_url) as second:
        assert second.production().version == "v1"
        assert (settings.home_dir / "ledger.db").is_file()


def test_promotion_with_a_stale_expectation_is_refused(ledger: Ledger) -> None:
    from shopflow.ledger import ProductionChangedError

    for version in ("v1", "v2", "v3"):
        _candidate(ledger, version)
    ledger.promote("v1", actor="a", reason="first", expected_current=None)
    ledger.promote("v2", actor="run-a", reason="beats v1", expected_current="v1")
    with pytest.raises(ProductionChangedError, match="another run moved it"):
        ledger.promote("v3", actor="run-b", reason="beats v1", expected_current="v1")
    assert ledger.production().version == "v2"
    assert len(ledger.events(kind="promotion")) == 2
