"""Staleness checks on a real pipeline home: ledger, model store, Feast, alert channels.

The home is the one gate 4's tests build (published marts up to a serving cutoff, two
registered models, production = the second), plus what staleness looks at: the
production model's age curve measured on its held-out cutoffs, a Feast online store
materialized to an older cutoff, and a production recommender whose serving snapshot is
two weeks old. The monitoring stage runs through :func:`run_stage` with its thresholds
set by the env variables its alerts name: low, every check alerts by e-mail (real SMTP
sink) and webhook; high, none does. The slow test runs it as a task of the monitoring DAG
in Airflow.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest
from test_pipeline_monitoring import CUTOFFS, build_state, run_monitoring_dag

from alert_sinks import SmtpSink, WebhookReceiver
from shopflow.ledger import Ledger

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from shopflow.settings import Settings

pytestmark = [pytest.mark.integration]

DATA_NOW = pd.Timestamp(CUTOFFS[-1] + timedelta(days=7), tz="UTC")  # the serving cutoff
TRAINED_UNTIL = CUTOFFS[5]  # the models' last training cutoff (build_state)
MATERIALIZED_TO = {"user_features_fv": datetime(2024, 1, 14, tzinfo=UTC),
                   "item_features_fv": datetime(2024, 1, 7, tzinfo=UTC)}
SNAPSHOT_CUTOFF = pd.Timestamp(CUTOFFS[8])
KEYS = ("SHOPFLOW_MONITORING__MAX_MODEL_AGE", "SHOPFLOW_MONITORING__MAX_FEATURE_STALENESS",
        "SHOPFLOW_MONITORING__MAX_RECOMMENDER_AGE")


def _materialize_old_features(settings: Settings) -> None:
    """An online store last materialized weeks before the newest published cutoff."""
    from shopflow.features import apply, materialize
    from shopflow.features.schema import ITEM_TABLE, USER_TABLE
    from shopflow.features.synthetic import feature_row, write_mart

    write_mart(settings, USER_TABLE, [feature_row(USER_TABLE, "u1", "2024-01-07", 1.0),
                                      feature_row(USER_TABLE, "u1", "2024-01-14", 2.0)])
    write_mart(settings, ITEM_TABLE, [feature_row(ITEM_TABLE, "i1", "2024-01-07", 7.0)])
    apply(settings)
    result = materialize(settings)
    assert {v.view: v.watermark for v in result.views} == MATERIALIZED_TO


def _save_age_curve(settings: Settings, version: str) -> dict[str, Any]:
    """Production's age curve, measured as the training report does, on its held-out rows."""
    from shopflow.evaluation.aging import age_curve, save_age_curve
    from shopflow.monitoring.reference import labelled_rows
    from shopflow.registry import load_model

    rows = labelled_rows(settings).rename(columns={"cutoff_time": "event_timestamp"})
    held = rows[rows["event_timestamp"] > pd.Timestamp(TRAINED_UNTIL)]
    model = load_model(settings, version)
    curve = age_curve(held, model.predict_proba(held), trained_until=pd.Timestamp(TRAINED_UNTIL),
                      metric=settings.gate.primary_metric,
                      tolerance=settings.monitoring.live_tolerance, newest_event=DATA_NOW)
    save_age_curve(settings.home_dir, version, curve)
    return curve.to_dict()


def _production_recommender(settings: Settings) -> str:
    from shopflow.recommend.gate import recommender_ledger
    from shopflow.recommend.rankers import popularity_model
    from shopflow.recommend.snapshot import ServingSnapshot
    from shopflow.recommend.store import save_recommender

    snapshot = ServingSnapshot(
        cutoff=SNAPSHOT_CUTOFF,
        ranked=pd.DataFrame({"user_id": ["u1"], "item_id": ["i1"], "score": [1.0], "rank": [1]}),
        popular=pd.DataFrame({"item_id": ["i1"], "score": [1.0]}),
        purchased=pd.DataFrame({"user_id": pd.Series([], dtype=str),
                                "item_id": pd.Series([], dtype=str)}),
    )
    version = save_recommender(settings, popularity_model(), snapshot, metadata={})
    ledger = recommender_ledger(settings)
    try:
        ledger.record_candidate(version=version, family="popularity", metrics={})
        ledger.promote(version, actor="test", reason="recommender goes live")
    finally:
        ledger.close()
    return version


@pytest.fixture
def home(settings: Settings) -> dict[str, Any]:
    """The pipeline home every test here checks (see the module docstring)."""
    _materialize_old_features(settings)
    versions = build_state(settings)  # publishes its marts over the ones Feast exported
    return {"versions": versions, "curve": _save_age_curve(settings, versions["bad"]),
            "recommender": _production_recommender(settings)}


@pytest.fixture
def sinks(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SmtpSink, WebhookReceiver]]:
    smtp, hook = SmtpSink().start(), WebhookReceiver().start()
    monkeypatch.setenv("SHOPFLOW_ALERTS__SMTP_HOST", smtp.host)
    monkeypatch.setenv("SHOPFLOW_ALERTS__SMTP_PORT", str(smtp.port))
    monkeypatch.setenv("SHOPFLOW_ALERTS__SMTP_TO", '["oncall@shop.test"]')
    monkeypatch.setenv("SHOPFLOW_ALERTS__WEBHOOK_URL", hook.url)
    try:
        yield smtp, hook
    finally:
        smtp.stop()
        hook.stop()


def _run_stage() -> dict[str, Any]:
    from shopflow.pipeline.tasks import run_stage

    return run_stage("staleness", dag_id="shopflow_monitoring", params={},
                     run_id="manual__staleness", actor="test")


def test_low_thresholds_alert_every_check_by_email_and_webhook(
        home: dict[str, Any], sinks: tuple[SmtpSink, WebhookReceiver],
        monkeypatch: pytest.MonkeyPatch) -> None:
    smtp, hook = sinks
    for key in KEYS:
        monkeypatch.setenv(key, "1h")
    result = _run_stage()
    assert result["data_now"] == DATA_NOW.isoformat()
    assert sorted(result["stale"]) == ["feature_freshness", "model_age", "recommender_age"]
    assert hook.events() == ["staleness"] * 3
    by_check = {body["details"]["check"]: body for body in hook.bodies}
    for name, key in zip(("model_age", "feature_freshness", "recommender_age"), KEYS,
                         strict=True):
        body = by_check[name]
        assert key in body["summary"] and body["details"]["setting"] == key
        assert body["details"]["threshold_days"] == pytest.approx(1 / 24, abs=1e-4)
        assert "over the 1h limit" in body["summary"]
    model = by_check["model_age"]["details"]
    assert model["version"] == home["versions"]["bad"]
    assert model["age_days"] == (DATA_NOW - pd.Timestamp(TRAINED_UNTIL, tz="UTC")).days
    assert model["anchor_kind"] == "last training cutoff (age curve)"
    assert model["wall_clock_since_deployed_seconds"] >= 0
    features = by_check["feature_freshness"]["details"]
    assert features["age_days"] == max((DATA_NOW - w).days for w in MATERIALIZED_TO.values())
    assert set(features["views"]) == set(MATERIALIZED_TO)
    recommender = by_check["recommender_age"]["details"]
    assert recommender["version"] == home["recommender"]
    assert recommender["age_days"] == (DATA_NOW - SNAPSHOT_CUTOFF.tz_localize("UTC")).days
    assert len(smtp.messages) == 3
    subjects = [message["Subject"] for _, _, message in smtp.messages]
    assert all("staleness" in subject for subject in subjects)
    assert all(recipients == ["oncall@shop.test"] for _, recipients, _ in smtp.messages)


def test_high_thresholds_alert_nothing(home: dict[str, Any],
                                       sinks: tuple[SmtpSink, WebhookReceiver],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    smtp, hook = sinks
    for key in KEYS:
        monkeypatch.setenv(key, "1000d")
    result = _run_stage()
    assert result["stale"] == []
    assert {c["status"] for c in result["checks"].values()} == {"ok"}
    assert hook.bodies == [] and smtp.messages == []


def test_measured_model_age_and_off(home: dict[str, Any],
                                    sinks: tuple[SmtpSink, WebhookReceiver],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """By default the model age is judged by the production model's measured age curve."""
    from shopflow.monitoring.staleness import judge

    smtp, hook = sinks
    monkeypatch.setenv(KEYS[1], "1000d")
    monkeypatch.setenv(KEYS[2], "off")
    result = _run_stage()
    model = result["checks"]["model_age"]
    curve = home["curve"]
    assert model["threshold_source"] == "measured"
    assert model["threshold_seconds"] == curve["max_served_age_seconds"]
    assert model["details"]["recommended_retrain_age_seconds"] == curve["retrain_age_seconds"]
    expected = judge(timedelta(seconds=model["age_seconds"]),
                     timedelta(seconds=curve["max_served_age_seconds"]))
    assert model["status"] == expected
    assert result["checks"]["recommender_age"]["status"] == "off"
    assert hook.events() == (["staleness"] if expected == "stale" else [])
    assert len(smtp.messages) == len(hook.bodies)


def test_without_an_age_curve_the_ledger_window_anchors_and_measured_is_off(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model promoted by hand (no age curve): no measured threshold, so no model alert."""
    from shopflow.monitoring.staleness import run_staleness_checks

    versions = build_state(settings)
    report = run_staleness_checks(settings)
    model = next(c for c in report.checks if c.name == "model_age")
    assert model.status == "off" and model.details["anchor_kind"] == "data window end (ledger)"
    assert KEYS[0] in model.reason
    ledger = Ledger(settings.ledger_url)
    try:
        window_end = ledger.candidate(versions["bad"]).data_window[1]
    finally:
        ledger.close()
    assert model.age_seconds == (DATA_NOW - pd.Timestamp(window_end, tz="UTC")).total_seconds()
    # nothing materialized and no recommender: those checks have nothing to look at
    assert {c.name: c.status for c in report.checks if c.name != "model_age"} == {
        "feature_freshness": "skipped", "recommender_age": "skipped"}


def test_evaluation_keeps_the_age_curves_of_winner_and_baseline(settings: Settings) -> None:
    """Not a dry run: each curve is saved per version and its ages go into the ledger.

    Gate 2 may ship the baseline rather than the winner, so both get one.
    """
    from shopflow.evaluation.aging import load_age_curve
    from shopflow.training.pipeline import evaluate_candidates, train_family
    from shopflow.training.synthetic import synthetic_training_frame

    quick = settings.model_copy(update={"training": settings.training.model_copy(
        update={"search_trials": 1})})
    frame = synthetic_training_frame(rows=2000, cutoffs=8, seed=17)
    candidates = [train_family(quick, family, frame, "aging-two") for family in
                  ("baseline", "lightgbm")]
    evaluation = evaluate_candidates(quick, candidates, frame, run_id="aging-two")
    for candidate in candidates:
        curve = load_age_curve(quick.home_dir, candidate.version)
        assert curve is not None and curve["points"], candidate.family
        with Ledger(quick.ledger_url) as ledger:
            metrics = ledger.candidate(candidate.version).metrics
        assert metrics["retrain_age_days"] == round(curve["retrain_age_seconds"] / 86400, 4)
        assert metrics["max_served_age_days"] == round(curve["max_served_age_seconds"] / 86400,
                                                       4)
    assert evaluation.age_curve == load_age_curve(quick.home_dir, evaluation.winner)


@pytest.mark.slow
def test_the_monitoring_dag_checks_staleness_and_alerts(
        home: dict[str, Any], sinks: tuple[SmtpSink, WebhookReceiver],
        monkeypatch: pytest.MonkeyPatch, shopflow_home: Path) -> None:
    """The ``staleness`` task of ``shopflow_monitoring`` in Airflow: three alerts, no failure."""
    smtp, hook = sinks
    for key in KEYS:
        monkeypatch.setenv(key, "1h")
    summary = run_monitoring_dag(shopflow_home)
    tasks = {t["task"]: t for t in summary["stages"]}
    assert tasks["staleness"]["state"] == "success"
    staleness = [body for body in hook.bodies if body["event"] == "staleness"]
    assert sorted(body["details"]["check"] for body in staleness) == [
        "feature_freshness", "model_age", "recommender_age"]
    assert all(body["details"]["setting"] in body["summary"] for body in staleness)
    mailed = [m for _, _, m in smtp.messages if "staleness" in m["Subject"]]
    assert len(mailed) == 3
