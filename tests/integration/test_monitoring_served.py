"""Gate 4 on what was served, and the skew check, against a real ``bentoml serve``.

One service for the module over a served history (``served_history``: features of a
past cutoff materialized online, a good model in production, the warehouse holding the
purchases that label every user). The good model serves everyone first. Then, in file
order: the log and the outcome join are checked; the skew check passes on the honest
service and fails, alerting, once one user's online value is tampered with; and the
scenario: a degraded model is force-promoted and served, labels have matured, and gate 4
on the served predictions rolls it back, its alert reaching the SMTP sink and the
webhook receiver. Stages run as the monitoring DAG's tasks run them (``run_stage``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pandas as pd
import pytest

from alert_sinks import SmtpSink, WebhookReceiver
from served_history import AS_OF, ServedHistory, build_served_history, wait_for
from shopflow.ledger import Ledger
from shopflow.privacy import IdHasher
from shopflow.serving.prediction_log import PROBE_HEADER, read_prediction_log

if TYPE_CHECKING:
    from collections.abc import Iterator

    from shopflow.serving.process import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USERS = 300


@dataclass
class Stack:
    history: ServedHistory
    service: ServiceProcess
    client: httpx.Client
    smtp: SmtpSink
    hook: WebhookReceiver

    @property
    def settings(self) -> Any:
        return self.history.settings

    def live_rows(self) -> int:
        log = read_prediction_log(self.settings.home_dir)
        return int((log["source"] == "live").sum()) if len(log) else 0

    def emails(self) -> list[str]:
        return [str(message["X-Shopflow-Event"]) for _, _, message in self.smtp.messages]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    smtp, hook = SmtpSink().start(), WebhookReceiver().start()
    history = build_served_history(tmp_path_factory.mktemp("served"), users=USERS, config={
        "monitoring": {"min_matured_rows": 100, "skew_sample": 10_000},
        "alerts": {"smtp_host": smtp.host, "smtp_port": smtp.port,
                   "smtp_to": ["ops@shop.test"], "webhook_url": hook.url},
    })
    service = history.serve()
    try:
        with httpx.Client(base_url=service.url, timeout=30) as client:
            stack = Stack(history, service, client, smtp, hook)
            assert set(history.predict_all(client)) == {history.good}
            wait_for(lambda: stack.live_rows() >= USERS, what="the good model's logged rows")
            yield stack
    finally:
        service.stop()
        smtp.stop()
        hook.stop()


@pytest.fixture
def as_the_dag(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run a monitoring stage the way the DAG's task does, on the stack's settings."""
    from shopflow.pipeline.tasks import run_stage

    monkeypatch.setenv("SHOPFLOW_HOME", str(stack.settings.home_dir))
    monkeypatch.setenv("SHOPFLOW_CONFIG", str(stack.history.config))

    def run(name: str) -> dict[str, Any]:
        return run_stage(name, dag_id="shopflow_monitoring", params={},
                         run_id=f"manual__test_{name}", actor="airflow")

    return run


def test_served_rows_carry_as_of_and_probes_are_kept_out(stack: Stack) -> None:
    from shopflow.monitoring.outcomes import served_outcomes

    probe = stack.client.post("/predict", json={"user_ids": stack.history.user_ids[:2]},
                              headers={PROBE_HEADER: "test"})
    assert probe.status_code == 200
    wait_for(lambda: (read_prediction_log(stack.settings.home_dir)["source"] == "probe").sum()
             == 2, what="the probe rows")
    log = read_prediction_log(stack.settings.home_dir)
    assert set(log["as_of"]) == {pd.Timestamp(AS_OF, tz="UTC")}  # the watermark, not the clock

    outcomes = served_outcomes(stack.settings)
    assert len(outcomes) == USERS and outcomes.attrs["pending"] == 0  # probes left out
    hasher = IdHasher(stack.settings.home_dir)
    truth = {hasher(uid): label for uid, label in stack.history.labels.items()}
    assert outcomes["label"].tolist() == [truth[u] for u in outcomes["user"]]
    assert (outcomes["as_of"] == pd.Timestamp(AS_OF, tz="UTC")).all()
    assert set(outcomes["model_version"]) == {stack.history.good}


def test_skew_check_passes_on_the_honest_service(stack: Stack, as_the_dag: Any) -> None:
    result = as_the_dag("skew_check")
    assert result["status"] == "pass", result
    assert result["compared"] == USERS and result["unmapped"] == 0
    assert result["feature_mismatches"] == 0 and result["score_mismatches"] == 0
    assert result["max_score_difference"] <= result["score_tolerance"]
    assert "skew" not in stack.hook.events()


def test_skew_check_fails_and_alerts_when_the_online_store_is_tampered(
        stack: Stack, as_the_dag: Any) -> None:
    from shopflow.features.schema import USER_TABLE
    from shopflow.features.store import get_store
    from shopflow.pipeline.monitoring_stages import SkewDetected

    victim = stack.history.frame.iloc[[7]].copy()
    honest = victim.copy()
    victim["recency_days"] = victim["recency_days"] + 100.0  # not what training would see
    store = get_store(stack.settings)
    store.write_to_online_store(USER_TABLE.view_name, victim)
    try:
        before = stack.live_rows()
        uid = str(victim["user_id"].iloc[0])
        assert stack.client.post("/predict", json={"user_ids": [uid]}).status_code == 200
        wait_for(lambda: stack.live_rows() > before, what="the tampered user's row")
        with pytest.raises(SkewDetected, match="training/serving skew") as failure:
            as_the_dag("skew_check")
        result = failure.value.result
        assert result.feature_mismatches == 1 and result.score_mismatches == 1
        hashed = IdHasher(stack.settings.home_dir)(uid)
        assert {(e["user"], e["what"]) for e in result.examples} == {
            (hashed, "recency_days"), (hashed, "score")}
        assert stack.hook.events()[-1] == "skew" and stack.emails()[-1] == "skew"
        assert stack.hook.bodies[-1]["details"]["feature_mismatches"] == 1
    finally:
        store.write_to_online_store(USER_TABLE.view_name, honest)


def test_scenario_a_degraded_model_served_is_rolled_back_by_gate4(
        stack: Stack, as_the_dag: Any) -> None:
    """The Done-when scenario of issue 15."""
    from shopflow.monitoring.outcomes import served_outcomes
    from shopflow.monitoring.served_gate import run_served_gate
    from shopflow.serving.sandbox import publish_model

    history, settings = stack.history, stack.settings
    bad = publish_model(settings, history.degraded_model(), base_rate=history.base_rate,
                        reason="force-promoted past the gates", actor="test")
    wait_for(lambda: stack.client.get("/metadata").json()["model_version"] == bad,
             what=f"the service to serve {bad}")
    before = stack.live_rows()
    assert set(history.predict_all(stack.client)) == {bad}
    wait_for(lambda: stack.live_rows() >= before + USERS, what="the degraded model's rows")

    # had the good model never served, the previous model re-scores the logged vectors
    outcomes = served_outcomes(settings)
    only_bad = outcomes[outcomes["model_version"] == bad]
    only_bad.attrs.update(outcomes.attrs)
    held = run_served_gate(settings, auto_rollback=False, outcomes=only_bad)
    assert (held.status, held.basis) == ("regressed", "rescored"), held
    assert held.comparison["previous"]["rows"] == held.comparison["production"]["rows"]
    assert stack.hook.events()[-1] == "gate_blocked"

    result = as_the_dag("live_gate")
    served = result["served"]
    assert served["status"] == "regressed" and served["basis"] == "served", served
    assert served["rolled_back_to"] == history.good
    assert result["status"] == "skipped"  # the backtest: production had already moved
    mine, theirs = served["versions"][bad], served["versions"][history.good]
    assert mine["rows"] == USERS and theirs["rows"] == USERS + 1  # + the tampered user's
    assert mine["purchase_rate"] == pytest.approx(sum(history.labels.values()) / USERS)
    assert mine["roc_auc"] < 0.5 < theirs["roc_auc"]
    assert served["comparison"]["delta"] == pytest.approx(mine["roc_auc"] - theirs["roc_auc"])

    with Ledger(settings.ledger_url) as ledger:
        assert ledger.production().version == history.good
        rollback = ledger.events(kind="rollback")[-1]
    assert (rollback.version, rollback.previous_version) == (history.good, bad)
    assert rollback.actor == "airflow:gate4" and "gate 4 on served traffic" in rollback.reason
    kept = rollback.details["comparison"]
    assert kept["production"]["roc_auc"] == pytest.approx(mine["roc_auc"])
    assert kept["previous"]["roc_auc"] == pytest.approx(theirs["roc_auc"])

    assert stack.hook.events()[-1] == "rollback"
    assert stack.hook.bodies[-1]["details"]["from_version"] == bad
    assert stack.emails()[-1] == "rollback"
    mail = stack.smtp.messages[-1][2]
    assert bad in str(mail["Subject"]) and stack.smtp.messages[-1][1] == ["ops@shop.test"]
    body = mail.get_content()
    assert "gate 4 on served traffic" in body
    assert json.loads(body[body.index("{"):])["comparison"]["basis"] == "served"
    wait_for(lambda: stack.client.get("/metadata").json()["model_version"] == history.good,
             what="the service to serve the good model again")
