"""State files written temp-then-rename, and the test-only fault points (inert by default)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from shopflow import atomic, faults

if TYPE_CHECKING:
    from pathlib import Path


def test_write_json_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "runs" / "candidates" / "baseline.json"
    atomic.write_json(target, {"version": "v1"})
    atomic.write_json(target, {"version": "v2"})
    assert json.loads(target.read_text()) == {"version": "v2"}
    assert [p.name for p in target.parent.iterdir()] == ["baseline.json"]


def test_a_writer_that_fails_leaves_the_old_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "reference.parquet"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("killed while writing")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["reference.parquet"]


def test_fault_points_are_inert_unless_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(faults.ENV_VAR, raising=False)
    assert not faults.armed("after:ingest")
    faults.crash_point("after:ingest")  # unset: nothing happens
    monkeypatch.setenv(faults.ENV_VAR, "inside:register, after:dbt_layer[marts]")
    assert faults.armed("after:dbt_layer[marts]")
    assert faults.armed("inside:register")
    assert not faults.armed("after:ingest")
    assert not faults.armed("inside:regist")
