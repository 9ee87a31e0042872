"""Gate 4 and drift on real models, ledger and model store.

The state is built directly (no training run, to stay fast): published marts with a
known signal, a good model that went to production first and a bad one (fitted on
shuffled labels) that replaced it. Labels matured after the bad model's deployment show
it is worse, so gate 4 must roll production back to the good model: once in process
(:func:`run_live_gate`) and once through the monitoring DAG in Airflow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest

from shopflow.ledger import Ledger
from shopflow.settings import Settings, load_settings

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration]

FEATURES = ["recency_days", "events_30d", "purchases_30d"]
CUTOFFS = [datetime(2024, 1, 7) + timedelta(days=7 * i) for i in range(10)]
DEPLOYED_AT_CUTOFF = CUTOFFS[6]  # labels from here on were unknown at deployment


def _features(rng: np.random.Generator, users: int, cutoff: datetime, shift: float = 0.0
              ) -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": [f"u{i}" for i in range(users)],
        "cutoff_time": pd.Timestamp(cutoff),
        "recency_days": rng.exponential(10 + shift * 20, users),
        "events_30d": rng.poisson(5 + shift * 10, users).astype(float),
        "purchases_30d": rng.poisson(1, users).astype(float),
    })


def _label(frame: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    score = 1.2 * frame["purchases_30d"] - 0.08 * frame["recency_days"] + rng.normal(0, 1, len(frame))
    return (score > 0.5).astype(int).to_numpy()


def _model(frame: pd.DataFrame, labels: np.ndarray, family: str) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from shopflow.training.families.baseline import LogisticPredictor
    from shopflow.training.model import PropensityModel

    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=200))
    pipeline.fit(frame[FEATURES].to_numpy(), labels)
    return PropensityModel(family=family, feature_names=list(FEATURES),
                           feature_service="propensity_v1", params={},
                           predictor=LogisticPredictor(pipeline, [0, 1, 2]))


def build_state(settings: Settings) -> dict[str, str]:
    """Marts, two registered models, production = the bad one; returns their versions."""
    from shopflow.monitoring.reference import record_deployment
    from shopflow.registry import save_model
    from shopflow.transform.publish import marts_dir

    rng = np.random.default_rng(7)
    labelled = pd.concat([_features(rng, 300, c) for c in CUTOFFS], ignore_index=True)
    labelled["label"] = _label(labelled, rng)
    serving = _features(rng, 300, CUTOFFS[-1] + timedelta(days=7), shift=1.5)
    folder = marts_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    pd.concat([labelled.drop(columns="label"), serving], ignore_index=True).to_parquet(
        folder / "user_features.parquet", index=False)
    labels = labelled[["user_id", "cutoff_time", "label"]].copy()
    labels["label_window_end"] = labels["cutoff_time"] + pd.Timedelta(days=7)
    labels.to_parquet(folder / "purchase_labels.parquet", index=False)

    train = labelled[labelled["cutoff_time"] < pd.Timestamp(DEPLOYED_AT_CUTOFF)]
    good = _model(train, train["label"].to_numpy(), "baseline")
    bad = _model(train, rng.permutation(train["label"].to_numpy()), "xgboost")
    window = (CUTOFFS[0].isoformat(), CUTOFFS[5].isoformat())
    versions = {}
    ledger = Ledger(settings.ledger_url)
    try:
        for name, model in (("good", good), ("bad", bad)):
            version = save_model(settings, model, metadata={"run_id": f"test-{name}"})
            ledger.record_candidate(version=version, family=model.family, metrics={},
                                    feature_service="propensity_v1", data_window=window,
                                    run_id=f"test-{name}")
            ledger.promote(version, actor="test", reason=f"{name} model goes live")
            versions[name] = version
    finally:
        ledger.close()
    record_deployment(settings, versions["bad"], data_watermark=DEPLOYED_AT_CUTOFF.isoformat())
    return versions


@pytest.fixture
def state(settings: Settings) -> dict[str, str]:
    return build_state(settings)


def test_live_gate_rolls_back_a_regressed_model(settings: Settings,
                                                state: dict[str, str]) -> None:
    from shopflow.monitoring.live import run_live_gate

    result = run_live_gate(settings, actor="test-gate4")
    assert result.status == "regressed", result
    assert result.production_version == state["bad"]
    assert result.previous_version == state["good"]
    assert result.rolled_back_to == state["good"]
    comparison = result.comparison
    assert comparison["rows"] == 300 * (len(CUTOFFS) - 6)  # only labels matured since
    assert comparison["production"]["roc_auc"] < comparison["previous"]["roc_auc"]
    ledger = Ledger(settings.ledger_url)
    try:
        assert ledger.production().version == state["good"]
        rollback = ledger.events(kind="rollback")[-1]
        assert rollback.version == state["good"] and rollback.previous_version == state["bad"]
        assert "gate 4" in rollback.reason
    finally:
        ledger.close()


def test_live_gate_alerts_rollback_or_blocked(settings: Settings, state: dict[str, str]) -> None:
    """Gate 4's alerts reach a real webhook: a rollback alert, or gate_blocked without one."""
    from alert_sinks import WebhookReceiver
    from shopflow.monitoring.live import run_live_gate

    receiver = WebhookReceiver().start()
    try:
        hooked = settings.model_copy(update={"alerts": settings.alerts.model_copy(
            update={"webhook_url": receiver.url})})
        held = run_live_gate(hooked, auto_rollback=False, actor="test-gate4")
        assert held.status == "regressed" and held.rolled_back_to is None
        assert receiver.events() == ["gate_blocked"]
        assert receiver.bodies[0]["details"]["production_version"] == state["bad"]
        assert run_live_gate(hooked, actor="test-gate4").rolled_back_to == state["good"]
        assert receiver.events() == ["gate_blocked", "rollback"]
        rollback = receiver.bodies[1]
        assert rollback["details"]["from_version"] == state["bad"]
        assert rollback["details"]["gate"] == "live" and "gate 4" in rollback["summary"]
    finally:
        receiver.stop()


def test_live_gate_passes_when_production_is_not_worse(settings: Settings,
                                                       state: dict[str, str]) -> None:
    from shopflow.monitoring.live import run_live_gate

    ledger = Ledger(settings.ledger_url)
    try:  # put the good model back on top: now production is the better one
        ledger.promote(state["good"], actor="test", reason="good again")
    finally:
        ledger.close()
    from shopflow.monitoring.reference import record_deployment

    record_deployment(settings, state["good"], data_watermark=DEPLOYED_AT_CUTOFF.isoformat())
    result = run_live_gate(settings)
    assert result.status == "pass", result
    assert result.rolled_back_to is None


def test_live_gate_skips_without_enough_matured_labels(settings: Settings,
                                                       state: dict[str, str]) -> None:
    from shopflow.monitoring.live import run_live_gate

    strict = settings.model_copy(update={
        "monitoring": settings.monitoring.model_copy(update={"min_matured_rows": 10_000})})
    result = run_live_gate(strict)
    assert result.status == "skipped" and "matured rows" in result.reason
    ledger = Ledger(settings.ledger_url)
    try:
        assert ledger.production().version == state["bad"]  # nothing changed
    finally:
        ledger.close()


def run_monitoring_dag(shopflow_home: Path) -> dict[str, Any]:
    """``shopflow pipeline run --dag shopflow_monitoring`` in a child process (Airflow's
    dag.test), asserted successful; its run summary."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    proc = subprocess.run(
        [sys.executable, "-m", "shopflow.cli", "pipeline", "run", "--dag", "shopflow_monitoring",
         "--json"],
        env=env, capture_output=True, text=True, timeout=300, cwd=shopflow_home.parent,
    )
    start = proc.stdout.find("{\n")
    assert start >= 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(proc.stdout[start:])
    assert proc.returncode == 0, summary
    answer: dict[str, Any] = summary
    return answer


@pytest.mark.slow
def test_monitoring_dag_rolls_back_and_signals_drift(shopflow_home: Path) -> None:
    settings = load_settings()
    settings.ensure_dirs()
    versions = build_state(settings)
    summary = run_monitoring_dag(shopflow_home)
    tasks = {t["task"]: t for t in summary["stages"]}
    assert tasks["live_gate"]["state"] == "success"
    assert tasks["feature_drift"]["state"] == "success"
    # nothing was served here: gate 4 on served traffic and the skew check have no rows
    assert tasks["skew_check"]["state"] == "skipped"
    from shopflow.pipeline.runs import read_records

    gate = read_records(settings, summary["run_id"])["live_gate"].result
    assert gate["status"] == "regressed" and gate["served"]["status"] == "skipped"
    assert "matured served rows" in gate["served"]["reason"]
    # the serving snapshot was shifted on purpose: drift is signalled (asset event)
    assert tasks["signal_retraining"]["state"] == "success"
    ledger = Ledger(settings.ledger_url)
    try:
        assert ledger.production().version == versions["good"]
        rollback = ledger.events(kind="rollback")[-1]
        assert rollback.previous_version == versions["bad"]
        assert rollback.actor.startswith("airflow")
    finally:
        ledger.close()
