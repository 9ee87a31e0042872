"""Two writer processes on one ledger (two DAG runs at once) leave it consistent.

Each process records candidates, promotes them and records rejections, interleaved with
the other. Serialised writes mean the promotions form one chain: each promotion's
``previous_version`` is the version of the promotion just before it, and production is the
last one — no lost update, no duplicate, no locked-database error.
"""

from __future__ import annotations

import multiprocessing as mp

import pytest

from shopflow.ledger import Ledger

WRITES_PER_PROCESS = 25


def _writer(url: str, schema: str | None, tag: str, start: mp.Event) -> None:
    ledger = Ledger(url, schema=schema)
    start.wait(timeout=60)
    for i in range(WRITES_PER_PROCESS):
        version = f"{tag}-{i:03d}"
        ledger.record_candidate(version=version, family="lightgbm", metrics={"roc_auc": i / 100},
                                run_id=tag)
        ledger.promote(version, actor=tag, reason=f"{tag} promotes {i}")
        ledger.record_event(kind="rejection", version=version, reason="also a rejection",
                            actor=tag)
    ledger.close()


def _run_two_writers(url: str, schema: str | None) -> None:
    Ledger(url, schema=schema).production()  # nothing here yet; creates nothing special
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(url, schema, tag, start)) for tag in ("a", "b")]
    for proc in procs:
        proc.start()
    start.set()
    for proc in procs:
        proc.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0], "a writer process failed"

    with Ledger(url, schema=schema) as ledger:
        promotions = ledger.events(kind="promotion")
        assert len(promotions) == 2 * WRITES_PER_PROCESS
        assert len(ledger.events(kind="rejection")) == 2 * WRITES_PER_PROCESS
        assert len(ledger.candidates()) == 2 * WRITES_PER_PROCESS
        assert promotions[0].previous_version is None
        for before, after in zip(promotions, promotions[1:], strict=False):
            assert after.previous_version == before.version
        assert ledger.production().version == promotions[-1].version
        actors = {p.actor for p in promotions}
        assert actors == {"a", "b"}


@pytest.mark.integration
@pytest.mark.slow
def test_two_processes_write_one_sqlite_ledger(settings) -> None:
    _run_two_writers(settings.ledger_url, None)


@pytest.mark.integration
@pytest.mark.postgres
@pytest.mark.slow
def test_two_processes_write_one_postgres_ledger(postgres_schema_prefix: str,
                                                 postgres_url: str) -> None:
    _run_two_writers(postgres_url, f"{postgres_schema_prefix}ledger")
