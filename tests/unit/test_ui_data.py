"""What the Shopflow view reads and draws, without Airflow: real SQLite ledger, real files."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from shopflow.ledger import Ledger
from shopflow.pipeline.runs import write_record
from shopflow.pipeline.vocabulary import StageRecord
from shopflow.ui import data, plots

if TYPE_CHECKING:
    from pathlib import Path

    from shopflow.settings import Settings


def test_parse_when_reads_the_date_picker_and_names_the_field() -> None:
    assert data.parse_when("2026-11-30") == datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)
    assert data.parse_when("2026-11-30T08:00:00+01:00") == datetime(2026, 11, 30, 7, tzinfo=UTC)
    assert data.parse_when("") is None
    with pytest.raises(ValueError, match="^at: 'soon'"):
        data.parse_when("soon")


def test_served_at_and_metric_history_follow_production_moves(settings: Settings) -> None:
    ledger = Ledger(settings.ledger_url)
    for version, auc in (("a", 0.6), ("b", 0.7)):
        ledger.record_candidate(version=version, family="baseline", metrics={"roc_auc": auc})
    ledger.promote("a", actor="x", reason="first")
    time.sleep(0.02)
    ledger.nominate("b", actor="x", reason="gate 2")  # a candidate: production unchanged
    time.sleep(0.02)
    ledger.accept_candidate("b", actor="x", reason="gate 3 passed")
    time.sleep(0.02)
    ledger.record_rollback(to_version="a", actor="airflow:bob", reason="bad")
    moves = ledger.production_history()
    assert [e.kind for e in moves] == ["promotion", "deployment", "rollback"]
    just_after = moves[1].at.replace(tzinfo=UTC) + timedelta(milliseconds=5)
    answer = data.served_at(ledger, "propensity", just_after)
    assert answer["version"] == "b" and answer["event"]["reason"] == "gate 3 passed"
    assert data.served_at(ledger, "propensity", datetime(2000, 1, 1, tzinfo=UTC))["version"] is None
    history = data.metric_history(ledger, "propensity")
    assert [(p["version"], p["value"]) for p in history["points"]] == [
        ("a", 0.6), ("b", 0.7), ("a", 0.6)]
    ledger.close()
    page = data.model_page(settings, "propensity")
    assert page["production"]["version"] == "a"
    assert [e["kind"] for e in page["events"]][0] == "rollback"  # newest first
    with pytest.raises(data.NotFound, match="unknown model 'ranker'"):
        data.model_page(settings, "ranker")


def test_runs_are_told_apart_by_their_stages(settings: Settings) -> None:
    write_record(settings, "t1", StageRecord("evaluate", "success", 1.0, {}))
    write_record(settings, "m1", StageRecord("feature_drift", "success", 1.0, {"psi": {}}))
    write_record(settings, "m1", StageRecord("a_new_readout", "blocked", 1.0, {"k": 1}))
    write_record(settings, "r1", StageRecord("rollback", "success", 1.0, {}))
    runs = {r["run"]: (r["kind"], r["status"]) for r in data.list_runs(settings)}
    assert runs == {"t1": ("training", "success"), "m1": ("monitoring", "blocked"),
                    "r1": ("rollback", "success")}
    latest = data.monitoring_page(settings)["latest"]
    assert {s["stage"]: s["result"] for s in latest["stages"]}["a_new_readout"] == {"k": 1}


def test_served_file_stays_inside_its_folder(tmp_path: Path) -> None:
    root = tmp_path / "reports"
    (root / "runs").mkdir(parents=True)
    (root / "runs" / "r.html").write_text("ok")
    (tmp_path / "secret.txt").write_text("no")
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    assert data.served_file(root, "runs/r.html").read_text() == "ok"
    for path in ("../secret.txt", "link.txt", "runs/../../secret.txt", "runs", "missing.html"):
        with pytest.raises(data.NotFound):
            data.served_file(root, path)


def test_psi_plot_marks_features_over_the_threshold() -> None:
    svg = plots.psi_bars({"psi": {"f_hot": 0.5, "f_cold": 0.01}, "threshold": 0.2,
                          "version": "v9"})
    assert svg.lstrip().startswith("<?xml") and "f_hot" in svg and "threshold 0.2" in svg
    assert "#b8342a" in svg  # the drifted bar is drawn red
    assert "no feature drift recorded yet" in plots.psi_bars(None)


