"""Run records and the end-of-run summary of ``shopflow pipeline run``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shopflow.pipeline.runner import PipelineRun, TaskOutcome, _attach_records
from shopflow.pipeline.runs import StageRecord, read_records, safe_run_id, write_record
from shopflow.pipeline.summary import format_summary, summary_dict

if TYPE_CHECKING:
    from shopflow.settings import Settings


def test_safe_run_id_keeps_only_filesystem_characters() -> None:
    assert safe_run_id("manual__2026-11-25T08:32:03.164019+00:00") == \
        "manual__2026-11-25T08_32_03.164019_00_00"


def test_records_round_trip_and_a_retry_overwrites(settings: Settings) -> None:
    run = "scheduled__2026-01-01T00:00:00+00:00"
    write_record(settings, run, StageRecord(stage="ingest", status="failed", seconds=1.0,
                                            error="boom"))
    write_record(settings, run, StageRecord(stage="ingest", status="success", seconds=2.0,
                                            result={"rows_ingested": 10}))
    write_record(settings, run, StageRecord(stage="train_candidate[xgboost]", status="success",
                                            seconds=3.0))
    records = read_records(settings, run)
    assert set(records) == {"ingest", "train_candidate[xgboost]"}
    assert records["ingest"].status == "success" and records["ingest"].error is None
    assert read_records(settings, "never-ran") == {}


def _run() -> PipelineRun:
    records = {
        "plan": StageRecord("plan", "success", 0.1, {"families": ["baseline", "xgboost"]}),
        "quality_gate[raw]": StageRecord("quality_gate[raw]", "success", 5.0,
                                         {"summary": "raw passed: 40 checks"}),
        "train_candidate[baseline]": StageRecord("train_candidate[baseline]", "success", 2.0),
        "train_candidate[xgboost]": StageRecord("train_candidate[xgboost]", "success", 3.0),
        "evaluate": StageRecord("evaluate", "success", 1.0, {"leaderboard": [
            {"family": "xgboost", "version": "v2", "metrics": {"roc_auc": 0.81, "log_loss": 0.3}},
            {"family": "baseline", "version": "v1", "metrics": {"roc_auc": 0.78}},
        ]}),
        "champion_gate": StageRecord("champion_gate", "success", 1.5, {"decision": {
            "promote": True, "forced": False, "version": "v2", "family": "xgboost",
            "reason": "beats the baseline by 0.03 roc_auc"}}),
        "quality_gate[marts]": StageRecord("quality_gate[marts]", "blocked", 4.0,
                                           error="GateFailed: 2 checks failed"),
    }
    tasks = [TaskOutcome("plan", -1, "success", 12.0),
             TaskOutcome("gate_raw", -1, "success", 5.5),
             TaskOutcome("gate_marts", -1, "failed", 4.2),
             TaskOutcome("train_candidate", 0, "success", 2.2),
             TaskOutcome("train_candidate", 1, "success", 3.1),
             TaskOutcome("evaluate", -1, "success", 1.2),
             TaskOutcome("champion_gate", -1, "success", 1.6),
             TaskOutcome("deploy", -1, "upstream_failed", None)]
    _attach_records(tasks, records)
    return PipelineRun("shopflow_training", "manual__x", "failed", 60.0, tasks, records)


def test_mapped_tasks_get_their_family_and_gates_their_verdict() -> None:
    data = summary_dict(_run())
    labels = [s["task"] for s in data["stages"]]
    assert "train_candidate[baseline]" in labels and "train_candidate[xgboost]" in labels
    assert data["gates"]["quality_gate[raw]"]["status"] == "pass"
    assert data["gates"]["quality_gate[marts]"]["status"] == "blocked"
    assert data["gates"]["champion_gate"]["status"] == "promote"
    assert data["blocked"] == ["quality_gate[marts]"]
    assert data["decision"]["version"] == "v2"


def test_text_summary_shows_stages_gates_leaderboard_and_decision() -> None:
    text = format_summary(_run())
    assert "FAILED in 60.0s" in text
    assert "gate_marts" in text and "blocked" in text
    assert "0.8100" in text and "0.7800" in text
    assert "decision: PROMOTED: xgboost v2" in text
    assert "blocked by: quality_gate[marts]" in text


def _with_recommender(record: StageRecord) -> PipelineRun:
    run = _run()
    records = {**run.records, "train_recommender": record}
    tasks = [*run.tasks, TaskOutcome("train_recommender", -1, record.status, record.seconds)]
    _attach_records(tasks, records)
    return PipelineRun(run.dag_id, run.run_id, run.state, run.seconds, tasks, records)


def test_summary_shows_the_recommender_leaderboard_and_decision() -> None:
    result = {
        "version": "r1", "winner": "lightgbm",
        "decision": {"promote": True, "version": "r1", "family": "lightgbm",
                     "reference": "baseline", "reason": "ndcg@10 0.3100 beats the baseline's"},
        "leaderboard": [
            {"model": "lightgbm", "winner": True, "metrics": {"recall@10": 0.42, "ndcg@10": 0.31}},
            {"model": "torch", "winner": False, "metrics": {"recall@10": 0.40, "ndcg@10": 0.29}},
            {"model": "popularity", "winner": False,
             "metrics": {"recall@10": 0.21, "ndcg@10": 0.12}},
        ],
    }
    run = _with_recommender(StageRecord("train_recommender", "success", 30.0, result))
    data = summary_dict(run)
    assert data["recommendations"]["decision"]["version"] == "r1"
    assert data["gates"]["recommender_gate"]["status"] == "promote"
    assert data["decision"]["version"] == "v2"  # the propensity decision is its own
    text = format_summary(run)
    assert "recommendations leaderboard" in text
    for value in ("0.4200", "0.3100", "0.2900", "0.1200"):
        assert value in text
    assert "recommender decision: PROMOTED: lightgbm r1" in text
    assert "decision: PROMOTED: xgboost v2" in text


def test_summary_says_why_recommendations_did_not_run() -> None:
    skipped = _with_recommender(StageRecord("train_recommender", "skipped", 0.1,
                                            {"reason": "recommendations switched off"}))
    assert "recommender_gate" not in summary_dict(skipped)["gates"]
    assert "recommendations: skipped (recommendations switched off)" in format_summary(skipped)
    rejected = _with_recommender(StageRecord("train_recommender", "success", 9.0, {
        "decision": {"promote": False, "version": "r2", "family": "torch",
                     "reason": "does not beat the champion"}, "leaderboard": []}))
    assert summary_dict(rejected)["gates"]["recommender_gate"]["status"] == "reject"
    assert "REJECTED (recommender unchanged)" in format_summary(rejected)


def test_a_run_that_waited_in_the_queue_says_so_first() -> None:
    run = _run()
    note = "queued 120s behind an earlier run of this DAG (max_active_runs=1: one run at a time)"
    run.records["plan"] = StageRecord("plan", "success", 0.1, {
        "families": ["baseline"], "queued": {"waited_s": 120.0, "note": note}})
    assert summary_dict(run)["queued"]["waited_s"] == 120.0
    assert format_summary(run).splitlines()[1] == f"note: this run {note}"
    assert summary_dict(_run())["queued"] is None
    assert "note: this run" not in format_summary(_run())
