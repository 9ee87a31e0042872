"""Memory given back between stages: nothing a later stage needs is lost."""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

import ibis

from shopflow import memory
from shopflow.memory import release_memory, resident_bytes

if TYPE_CHECKING:
    import pytest


def test_release_closes_ibis_default_duckdb_and_ibis_opens_a_fresh_one() -> None:
    first = ibis.get_backend()  # what Feast's offline store runs its queries on
    assert first.raw_sql("select 42").fetchall() == [(42,)]
    release_memory()
    assert ibis.options.default_backend is None
    second = ibis.get_backend()
    assert second is not first
    assert second.raw_sql("select 1").fetchall() == [(1,)]
    release_memory()  # twice in a row, and with nothing imported or opened: harmless
    release_memory()


def test_resident_bytes_is_this_process_size() -> None:
    resident = resident_bytes()
    assert resident is not None  # Linux: /proc/self/statm
    before = resident
    block = b"\x01" * (64 << 20)  # written: every page resident
    assert resident_bytes() >= before + (60 << 20)  # type: ignore[operator]
    del block


def test_small_process_skips_the_collection_but_still_releases(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Below the threshold no full collection runs (it walks every object, ~0.7 s)."""
    resident = resident_bytes()
    assert resident is not None
    monkeypatch.setattr(memory, "COLLECT_ABOVE_BYTES", resident + (1 << 30))  # a small process
    collections = gc.get_stats()[2]["collections"]
    release_memory()
    assert gc.get_stats()[2]["collections"] == collections


def test_large_process_collects(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "COLLECT_ABOVE_BYTES", 0)  # as if this process were large
    collections = gc.get_stats()[2]["collections"]
    release_memory()
    assert gc.get_stats()[2]["collections"] == collections + 1
