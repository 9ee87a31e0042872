"""Rollback and gate 3's production move are compare-and-sets: of several processes
rolling back the same production model at once (gate 4, a person, a retried task), or
accepting the same deploy-pending candidate (two gate 3 runs), exactly one moves the alias."""

from __future__ import annotations

import multiprocessing as mp

import pytest

from shopflow.ledger import CandidateChangedError, Ledger, ProductionChangedError

ROLLERS = 4


def _roller(url: str, schema: str | None, tag: str, start: mp.Event, results: mp.Queue,
            action: str) -> None:
    ledger = Ledger(url, schema=schema)
    start.wait(timeout=60)
    try:
        if action == "rollback":
            ledger.record_rollback(to_version="good", reason=f"{tag}: bad is bad", actor=tag,
                                   expected_current="bad")
        else:
            ledger.accept_candidate("next", actor=tag, reason=f"{tag}: gate 3 passed")
    except (ProductionChangedError, CandidateChangedError):
        results.put("refused")
    else:
        results.put("moved")
    finally:
        ledger.close()


def _run(url: str, schema: str | None, action: str) -> None:
    ctx = mp.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_roller, args=(url, schema, f"r{i}", start, results, action))
             for i in range(ROLLERS)]
    for proc in procs:
        proc.start()
    start.set()
    for proc in procs:
        proc.join(timeout=120)
    assert [p.exitcode for p in procs] == [0] * ROLLERS
    outcomes = sorted(results.get(timeout=5) for _ in range(ROLLERS))
    assert outcomes == ["moved"] + ["refused"] * (ROLLERS - 1)


def _race(url: str, schema: str | None) -> None:
    with Ledger(url, schema=schema) as ledger:
        ledger.promote("good", actor="t", reason="first")
        ledger.promote("bad", actor="t", reason="second")
    _run(url, schema, "rollback")
    with Ledger(url, schema=schema) as ledger:
        assert ledger.production().version == "good"
        (event,) = ledger.events(kind="rollback")
        assert (event.version, event.previous_version) == ("good", "bad")


@pytest.mark.integration
def test_concurrent_rollbacks_move_a_sqlite_ledger_once(settings) -> None:
    _race(settings.ledger_url, None)


@pytest.mark.integration
@pytest.mark.postgres
def test_concurrent_rollbacks_move_a_postgres_ledger_once(postgres_schema_prefix: str,
                                                          postgres_url: str) -> None:
    _race(postgres_url, f"{postgres_schema_prefix}ledger")


def _accept_race(url: str, schema: str | None) -> None:
    with Ledger(url, schema=schema) as ledger:
        ledger.promote("good", actor="t", reason="first")
        ledger.nominate("next", actor="gate2", reason="beats good", expected_current="good")
    _run(url, schema, "accept")
    with Ledger(url, schema=schema) as ledger:
        assert ledger.production().version == "next" and ledger.pending() is None
        (event,) = ledger.events(kind="deployment")
        assert (event.version, event.previous_version) == ("next", "good")


@pytest.mark.integration
def test_concurrent_gate3_accepts_move_a_sqlite_ledger_once(settings) -> None:
    _accept_race(settings.ledger_url, None)


@pytest.mark.integration
@pytest.mark.postgres
def test_concurrent_gate3_accepts_move_a_postgres_ledger_once(postgres_schema_prefix: str,
                                                              postgres_url: str) -> None:
    _accept_race(postgres_url, f"{postgres_schema_prefix}ledger")
