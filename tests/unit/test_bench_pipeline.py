"""The pipeline benchmark's own logic: growth maths, memory of a process tree, tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from benchmarks.bench_pipeline import (
    DEPLOY_PENDING,
    _parse_summary,
    _tree_rss_bytes,
    disk_bytes,
    growth_per_10x,
    scan_floor,
    stage_peaks,
    stages_from_records,
    tables,
)

if TYPE_CHECKING:
    from pathlib import Path


def test_growth_per_10x_is_linear_at_ten_and_normalises_the_size_ratio() -> None:
    assert growth_per_10x(2.0, 20.0, 10) == pytest.approx(10.0)
    # 100x the data and 100x the time is still "10x per 10x"
    assert growth_per_10x(1.0, 100.0, 100) == pytest.approx(10.0)
    assert growth_per_10x(4.0, 8.0, 10) == pytest.approx(2.0)


def test_growth_per_10x_refuses_noise_and_missing_values() -> None:
    assert growth_per_10x(None, 3.0, 10) is None
    assert growth_per_10x(0.01, 3.0, 10) is None  # under 0.05 s: noise, not a trend
    assert growth_per_10x(1.0, 3.0, 1) is None


def test_tree_rss_counts_the_children_of_a_process() -> None:
    """A child holding ~64 MiB must show up in the tree total of its parent."""
    code = "b = bytearray(64 * 2**20); b[::4096] = b'x' * len(b[::4096]); print('ready', flush=True); input()"
    parent = subprocess.Popen(
        [sys.executable, "-c",
         f"import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', {code!r}]); "
         "p.wait()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == "ready"
        assert _tree_rss_bytes(parent.pid) >= 64 * 2**20
    finally:
        parent.communicate(input="\n", timeout=30)
    assert _tree_rss_bytes(parent.pid) == 0  # gone: nothing to count


def test_parse_summary_skips_the_progress_lines_before_the_json() -> None:
    payload = {"state": "success", "stages": [{"task": "ingest", "seconds": 1.5}]}
    stdout = "Airflow's log: /x.log\n  [ 1.0s] ingest  success 1.5s\n" + json.dumps(payload)
    assert _parse_summary(stdout) == payload
    assert _parse_summary("Traceback: boom") is None


def _run(events: int, scale: float, *, failed: dict[str, str] | None = None) -> dict:
    return {
        "events": events, "state": "success", "timed_out": False, "exit_code": 0,
        "wall_s": 60 * scale, "cpu_s": 50 * scale, "peak_tree_mib": 900 * scale,
        "peak_proc_mib": 800 * scale, "load_mean_1m": 2.0, "load_max_1m": 3.0,
        "stages": {"ingest": 4 * scale, "train[xgboost]": 2 * scale, "plan": 3.0},
        "failed": failed or {},
    }


def test_tables_order_stages_and_judge_the_targets() -> None:
    runs = [_run(1_000_000, 3.0, failed={"train[xgboost]": "boom"}), _run(100_000, 1.0)]
    (stage_title, stage_heads, stage_rows), (_, total_heads, total_rows) = tables(runs)
    assert stage_heads[1:3] == ["100,000 events s", "1,000,000 events s"]
    assert stage_heads[-2:] == ["100k MiB", "1M MiB"]
    assert [row[0] for row in stage_rows] == ["plan", "ingest", "train[xgboost]"]
    ingest = stage_rows[1]
    assert ingest[3] == "3.0"  # 3x per 10x
    assert ingest[-1] == "-"  # no per-stage memory in these runs
    assert stage_rows[2][2].endswith("✗")
    by_size = {row[0]: row for row in total_rows}
    target = total_heads.index("target time")
    assert by_size["1,000,000"][target] == "≤ 5 min: met"  # 180 s
    assert by_size["100,000"][target] == "-"
    assert by_size["x per 10x 100k→1M"][total_heads.index("wall s")] == "3.0"
    assert by_size["1,000,000"][total_heads.index("floor s (wall / floor)")] == "-"


def test_ten_million_events_are_judged_against_ten_minutes_and_six_gib() -> None:
    run = {**_run(10_000_000, 1.0), "wall_s": 700.0, "peak_tree_mib": 5_000.0,
           "peak_proc_mib": 4_000.0, "floor": {"seconds": 3.5}}
    _, (_, heads, rows) = tables([run])
    assert rows[0][heads.index("target time")] == "≤ 10 min: MISSED"
    assert rows[0][heads.index("target memory")] == "≤ 6 GiB: met"
    assert rows[0][heads.index("floor s (wall / floor)")] == "3.50 (200x)"
    killed = {**run, "state": None, "exit_code": -9}
    _, (_, heads, rows) = tables([killed])
    assert rows[0][heads.index("target memory")] == "≤ 6 GiB: within so far, not finished"


def test_a_run_ending_deploy_pending_is_a_finished_training_dag() -> None:
    """The bench starts no model service, so gate 3 waits: every training stage ran."""
    run = {**_run(1_000_000, 1.0), "state": DEPLOY_PENDING, "exit_code": 4,
           "wall_s": 200.0, "peak_tree_mib": 3_000.0}
    small = {**_run(100_000, 1.0), "state": DEPLOY_PENDING, "exit_code": 4, "wall_s": 50.0}
    _, (_, heads, rows) = tables([small, run])
    by_size = {row[0]: row for row in rows}
    assert by_size["1,000,000"][heads.index("state")] == DEPLOY_PENDING
    assert by_size["1,000,000"][heads.index("target time")] == "≤ 5 min: met"
    assert by_size["x per 10x 100k→1M"][heads.index("wall s")] == "4.0"


def test_disk_bytes_counts_written_blocks_below_a_folder(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "data.bin").write_bytes(b"x" * 3 * 2**20)
    (tmp_path / "small.txt").write_text("hello")
    assert disk_bytes(tmp_path) >= 3 * 2**20
    assert disk_bytes(tmp_path / "missing") == 0


def test_scan_floor_groups_the_raw_events_of_a_real_warehouse(tmp_path: Path) -> None:
    import duckdb

    assert scan_floor(tmp_path) is None  # no warehouse: no floor
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("create schema raw")
        con.execute("create table raw.raw_events as select (i % 7)::varchar as user_id, "
                    "timestamp '2024-01-01' + to_seconds(i) as event_time from range(1000) t(i)")
    floor = scan_floor(tmp_path)
    assert floor is not None
    assert (floor["users"], floor["events"]) == (7, 1000)
    assert floor["seconds"] >= 0


def test_stage_peaks_takes_the_samples_inside_each_stage_window(tmp_path: Path) -> None:
    """A record's file time is the stage's end; its seconds give the start."""
    stages = tmp_path / "reports" / "runs" / "run1" / "stages"
    stages.mkdir(parents=True)
    for name, seconds, end in (("ingest", 10.0, 1010.0), ("quality_gate[raw]", 5.0, 1020.0)):
        path = stages / f"{name}.json"
        path.write_text(json.dumps({"stage": name, "status": "success", "seconds": seconds}))
        os.utime(path, (end, end))
    mib = 2**20
    samples = [(1001.0, 100 * mib), (1009.0, 300 * mib), (1016.0, 200 * mib),
               (1019.0, 250 * mib), (1030.0, 999 * mib)]
    assert stage_peaks(tmp_path, samples) == {"ingest": 300.0, "quality_gate[raw]": 250.0}


def test_stages_from_records_names_stages_as_the_dag_tasks(tmp_path: Path) -> None:
    """A killed run has no summary; its finished stages' records still give the seconds."""
    stages = tmp_path / "reports" / "runs" / "run1" / "stages"
    stages.mkdir(parents=True)
    for name, seconds in (("ingest", 1.5), ("quality_gate[raw]", 2.0),
                          ("dbt_layer[marts]", 3.0), ("train_candidate[xgboost]", 4.0)):
        (stages / f"{name}.json").write_text(json.dumps({"stage": name, "seconds": seconds}))
    (stages / "broken.json").write_text("{")
    assert stages_from_records(tmp_path) == {
        "ingest": 1.5, "gate_raw": 2.0, "dbt_marts": 3.0, "train[xgboost]": 4.0,
    }
