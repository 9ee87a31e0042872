"""Memory given back between stages: nothing a later stage needs is lost."""

from __future__ import annotations

import ibis

from shopflow.memory import release_memory


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
