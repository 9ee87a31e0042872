"""One ledger, several models: the propensity model and the recommender never touch each
other's production alias, history or rollback target; old ledgers gain the dimension."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from shopflow.ledger import ALL_MODELS, Ledger, LedgerError

if TYPE_CHECKING:
    from shopflow.settings import Settings

# The ledger's tables as they were before the model dimension (an upgrade must keep them).
OLD_SCHEMA = [
    """create table shopflow_candidates (id integer primary key autoincrement,
       version varchar(128) not null unique, family varchar(32) not null, metrics json not null,
       params json not null, feature_service varchar(128), data_window_start varchar(64),
       data_window_end varchar(64), data_fingerprint varchar(128), config_hash varchar(64),
       code_version varchar(64), run_id varchar(256), created_at datetime not null)""",
    """create table shopflow_events (id integer primary key autoincrement,
       kind varchar(32) not null, at datetime not null, version varchar(128),
       previous_version varchar(128), reason text not null, actor varchar(128) not null,
       details json not null, constraint shopflow_events_kind check
       (kind in ('promotion', 'rejection', 'deployment', 'rollback')))""",
    """create table shopflow_aliases (alias varchar(64) primary key, version varchar(128),
       since datetime, reason text, previous_version varchar(128), event_id integer)""",
    """insert into shopflow_candidates (version, family, metrics, params, created_at)
       values ('old-1', 'xgboost', '{"roc_auc": 0.7}', '{}', '2026-01-01 00:00:00')""",
    """insert into shopflow_events (kind, at, version, reason, actor, details)
       values ('promotion', '2026-01-01 00:00:01', 'old-1', 'first model', 'alice', '{}')""",
    """insert into shopflow_aliases (alias, version, since, reason)
       values ('production', 'old-1', '2026-01-01 00:00:01', 'first model')""",
]


@pytest.fixture
def ledger(settings: Settings) -> Ledger:
    with Ledger(settings.ledger_url) as led:
        yield led


def _both(ledger: Ledger) -> None:
    """Propensity p1 -> p2 and recommender r1 -> r2 -> r3, interleaved."""
    ledger.record_candidate(version="p1", family="baseline", metrics={"roc_auc": 0.7})
    ledger.record_candidate(version="r1", family="lightgbm", metrics={"ndcg@10": 0.2},
                            model="recommender")
    ledger.promote("p1", actor="a", reason="first propensity model")
    ledger.promote("r1", actor="a", reason="first recommender", model="recommender")
    ledger.record_candidate(version="r2", family="torch", metrics={"ndcg@10": 0.25},
                            model="recommender")
    ledger.promote("r2", actor="a", reason="r2 beats r1", model="recommender")
    ledger.record_candidate(version="p2", family="xgboost", metrics={"roc_auc": 0.8})
    ledger.promote("p2", actor="a", reason="p2 beats p1")
    ledger.record_candidate(version="r3", family="lightgbm", metrics={"ndcg@10": 0.3},
                            model="recommender")
    ledger.promote("r3", actor="a", reason="r3 beats r2", model="recommender")
    ledger.record_event(kind="rejection", version="r9", reason="does not beat r3",
                        model="recommender")


def test_each_model_has_its_own_alias_history_and_candidates(ledger: Ledger) -> None:
    _both(ledger)
    assert ledger.production().version == "p2"
    assert ledger.production().previous_version == "p1"
    recommender = ledger.production(model="recommender")
    assert (recommender.version, recommender.family, recommender.model) == ("r3", "lightgbm",
                                                                            "recommender")
    assert recommender.previous_version == "r2"
    assert [c.version for c in ledger.candidates()] == ["p2", "p1"]
    assert [c.version for c in ledger.candidates(model="recommender")] == ["r3", "r2", "r1"]
    assert len(ledger.candidates(model=ALL_MODELS)) == 5
    assert ledger.candidate("r2").model == "recommender"  # versions are unique: any model
    assert [e.version for e in ledger.production_history()] == ["p1", "p2"]
    assert [e.version for e in ledger.events(model="recommender", kind="promotion")] == [
        "r1", "r2", "r3"]
    assert {e.model for e in ledger.events(model=ALL_MODELS)} == {"propensity", "recommender"}
    assert ledger.events(kind="rejection") == []  # the recommender's rejection is its own


def test_rolling_one_model_back_leaves_the_other_alone(ledger: Ledger) -> None:
    _both(ledger)
    assert ledger.previous_production() == "p1"
    assert ledger.previous_production(model="recommender") == "r2"
    left = ledger.record_rollback(to_version="r2", reason="bad lists", actor="ops",
                                  model="recommender")
    assert left == "r3"
    assert ledger.production(model="recommender").version == "r2"
    assert ledger.production().version == "p2"  # untouched
    assert ledger.previous_production(model="recommender") == "r1"  # never back to r3
    rollback = ledger.events(kind="rollback", model="recommender")[-1]
    assert (rollback.version, rollback.previous_version, rollback.model) == ("r2", "r3",
                                                                              "recommender")
    assert ledger.events(kind="rollback") == []


def test_a_ledger_bound_to_the_recommender_defaults_to_it(settings: Settings) -> None:
    with Ledger(settings.ledger_url, model="recommender") as recommender, \
            Ledger(settings.ledger_url) as main:
        recommender.record_candidate(version="r1", family="torch", metrics={"ndcg@10": 0.2})
        recommender.promote("r1", actor="a", reason="first", expected_current=None)
        assert recommender.production().version == "r1"
        assert main.production() is None
        assert main.production(model="recommender").version == "r1"
        assert main.candidates() == []


def test_status_keeps_the_design_object_and_adds_a_recommender_section(ledger: Ledger) -> None:
    assert ledger.status() == {"production": None, "candidates": [], "events": []}
    _both(ledger)
    status = json.loads(json.dumps(ledger.status()))
    assert status["production"]["version"] == "p2"
    assert [c["version"] for c in status["candidates"]] == ["p2", "p1"]
    assert {e["version"] for e in status["events"]} == {"p1", "p2"}
    section = status["recommender"]
    assert section["production"]["version"] == "r3"
    assert section["production"]["metrics"] == {"ndcg@10": 0.3}
    assert [c["version"] for c in section["candidates"]] == ["r3", "r2", "r1"]
    assert [e["kind"] for e in section["events"]][-1] == "rejection"
    assert set(status) == {"production", "candidates", "events", "recommender"}


def test_bad_model_names_are_refused(ledger: Ledger) -> None:
    with pytest.raises(LedgerError, match="invalid model name"):
        ledger.promote("v1", actor="a", reason="r", model="a:b")
    with pytest.raises(LedgerError, match="invalid model name"):
        Ledger("sqlite://", model="")


def test_a_ledger_from_before_the_model_dimension_is_upgraded_in_place(
        settings: Settings) -> None:
    engine = sa.create_engine(settings.ledger_url)
    with engine.begin() as conn:
        for statement in OLD_SCHEMA:
            conn.exec_driver_sql(statement)
    engine.dispose()
    with Ledger(settings.ledger_url) as ledger:
        production = ledger.production()
        assert (production.version, production.family, production.model) == (
            "old-1", "xgboost", "propensity")
        assert [e.model for e in ledger.events()] == ["propensity"]
        ledger.record_candidate(version="r1", family="lightgbm", metrics={}, model="recommender")
        ledger.promote("r1", actor="a", reason="first recommender", model="recommender")
        assert ledger.production().version == "old-1"
        assert ledger.production(model="recommender").version == "r1"
    with Ledger(settings.ledger_url) as again:  # a second open finds nothing to migrate
        assert again.status()["recommender"]["production"]["version"] == "r1"
        assert [c.version for c in again.candidates()] == ["old-1"]
