"""The warehouse benchmark's own logic: one measured child step, the ingest batch, tables."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING

from benchmarks import bench_warehouse
from benchmarks.bench_warehouse import _batch_ids, run_step, tables

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def test_run_step_measures_a_child_and_its_memory(tmp_path: Path) -> None:
    """A child holding ~64 MiB for a moment: exit 0, its memory and CPU are counted."""
    code = ("import time; b = bytearray(64 * 2**20); b[::4096] = b'x' * len(b[::4096]); "
            "print('held'); time.sleep(0.8)")
    step = run_step([sys.executable, "-c", code], env=dict(os.environ),
                    log=tmp_path / "child.log", timeout=60)
    assert step["exit_code"] == 0
    assert step["peak_tree_mib"] >= 64
    assert step["seconds"] >= 0.8
    assert step["cpu_s"] > 0
    assert step["load_1m"] >= 0
    assert step["killed"] is None
    assert (tmp_path / "child.log").read_text().strip() == "held"


def test_run_step_kills_a_child_past_its_timeout(tmp_path: Path) -> None:
    step = run_step([sys.executable, "-c", "import time; time.sleep(60)"], env=dict(os.environ),
                    log=tmp_path / "slow.log", timeout=0.5)
    assert step["exit_code"] < 0  # killed by a signal, not finished
    assert step["killed"] == "timeout"
    assert step["seconds"] < 30


def test_run_step_stops_a_big_child_when_the_machine_runs_short_of_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A floor above any machine's memory: a step holding the guard's size is stopped."""
    monkeypatch.setattr(bench_warehouse, "GUARD_STEP_MIB", 32)
    code = ("import time; b = bytearray(64 * 2**20); b[::4096] = b'x' * len(b[::4096]); "
            "time.sleep(60)")
    step = run_step([sys.executable, "-c", code], env=dict(os.environ),
                    log=tmp_path / "big.log", timeout=60, min_available_mib=2.0**40)
    assert step["exit_code"] < 0
    assert step["killed"] is not None and step["killed"].startswith("machine memory under")
    assert step["seconds"] < 30


def test_run_step_leaves_a_small_child_alone_when_memory_is_short(tmp_path: Path) -> None:
    """The shortage is not the small step's doing: it runs to its end."""
    step = run_step([sys.executable, "-c", "import time; time.sleep(1)"], env=dict(os.environ),
                    log=tmp_path / "small.log", timeout=60, min_available_mib=2.0**40)
    assert step["exit_code"] == 0
    assert step["killed"] is None


def test_batch_ids_come_from_the_ingest_json_after_any_log_lines(tmp_path: Path) -> None:
    log = tmp_path / "ingest.log"
    log.write_text("some warning\n" + json.dumps({"batch_ids": ["b1"], "rows_read": 3}))
    assert _batch_ids(log) == ["b1"]
    log.write_text("Traceback: boom")
    assert _batch_ids(log) == []


def _step(seconds: float, code: int = 0) -> dict[str, float | int | str | None]:
    return {"exit_code": code, "seconds": seconds, "cpu_s": seconds, "peak_tree_mib": 100.0,
            "load_1m": 1.0, "killed": "timeout" if code else None}


def test_tables_sum_the_stages_and_compare_ingest_with_the_floor() -> None:
    finished = {"backend": "duckdb", "events": 1_000_000, "state": "success", "failed": None,
                "peak_tree_mib": 100.0, "database": 50.0,
                "steps": {"floor_load": _step(2.0), "floor_scan": _step(0.5),
                          "ingest": _step(6.0), "gate_raw": _step(3.0),
                          "dbt_staging": _step(4.0), "dbt_marts": _step(1.0)}}
    killed = {"backend": "postgres", "events": 1_000_000, "state": "timeout",
              "failed": "dbt_staging", "peak_tree_mib": 100.0, "database": None,
              "steps": {"floor_load": _step(4.0), "ingest": _step(8.0),
                        "dbt_staging": _step(9.0, code=-9)}}
    (_, heads, step_rows), (_, _, totals) = tables([killed, finished])
    assert heads == ["step", "duckdb 1M", "postgres 1M"]
    staging = next(row for row in step_rows if row[0] == "dbt_staging")
    assert "✗ (timeout)" in staging[2] and "✗" not in staging[1]
    gate_marts = next(row for row in step_rows if row[0] == "gate_marts")
    assert gate_marts[1:] == ["-", "-"]
    duck = next(row for row in totals if row[0] == "duckdb 1M")
    # stages 6 + 3 + 4 + 1 (floor excluded; cpu the same here), dbt 4 + 1, gates 3,
    # ingest 3x its floor
    assert duck[3:10] == [14.0, 14.0, 6.0, 5.0, 3.0, 2.0, "3.0x"]


def test_a_duckdb_memory_limit_names_its_own_column() -> None:
    run = {"backend": "duckdb", "events": 10_000_000, "state": "success", "failed": None,
           "peak_tree_mib": 1.0, "memory_limit": "1GiB", "steps": {"ingest": _step(1.0)}}
    (_, heads, _), (_, _, totals) = tables([run])
    assert heads == ["step", "duckdb 10M (limit 1GiB)"]
    assert totals[0][0] == "duckdb 10M (limit 1GiB)"
