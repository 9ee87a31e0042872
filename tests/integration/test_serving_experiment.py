"""An A/B test end to end: a real ``bentoml serve`` splits traffic, the readout decides.

One service for the module, on its own SHOPFLOW_HOME: a real Feast online store, model
store, ledger and DuckDB warehouse. Three registered models: the champion (production),
then two challengers, registered after it. The service tests the newest challenger first.

1. Shoppers of the first half are asked for (in batches, then one by one again): each
   is answered by the model of its sticky arm, every row logged with its arm.
2. Their purchases are written to the warehouse, drawn from the *champion's* scores:
   the challenger is truly worse. The monitoring stage reads the matured outcomes and
   records *stop*; the service ends that test and starts one with the next challenger.
3. The second half's purchases are drawn from the *second challenger's* scores: it is
   truly better. The stage records *promote*, gate 3 runs against the service, and
   production moves to the challenger; the test ends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from shopflow.ledger import Ledger
from shopflow.pipeline.stages import stage_function
from shopflow.pipeline.vocabulary import StageContext, StageSkipped
from shopflow.serving.experiment import CHALLENGER, CHAMPION, assign_arm
from shopflow.serving.process import ServiceProcess, free_port
from shopflow.serving.sandbox import (
    publish_model,
    synthetic_user_features,
    train_tiny_model,
    write_online_features,
)
from shopflow.settings import Settings, load_settings

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USERS = 1200  # two halves of 600: one per challenger
SHARE = 0.5
SALT = "it-salt"
BATCH = 40


@dataclass
class Experiment:
    settings: Settings
    service: ServiceProcess
    client: httpx.Client
    features: pd.DataFrame
    champion: str
    worse: str
    better: str

    def metadata(self) -> dict[str, Any]:
        response = self.client.get("/metadata")
        response.raise_for_status()
        return response.json()

    def wait(self, predicate: Any, what: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        meta = self.metadata()
        while not predicate(meta):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {meta}")
            time.sleep(0.2)
            meta = self.metadata()
        return meta

    def traffic(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Every id asked for in batches; returns user id -> its prediction."""
        answers: dict[str, dict[str, Any]] = {}
        written = self.metadata()["prediction_log"]["written"]
        for start in range(0, len(ids), BATCH):
            response = self.client.post("/predict", json={"user_ids": ids[start:start + BATCH]})
            assert response.status_code == 200, response.text
            for p in response.json()["predictions"]:
                answers[p["user_id"]] = p
        self.wait(lambda m: m["prediction_log"]["written"] >= written + len(ids),
                  "the prediction log to be written")
        return answers

    def purchases(self, ids: list[str], truth: str, seed: int) -> None:
        """Purchases within the horizon for the shoppers ``truth``'s scores rank high
        (plus a little noise), and a later event so every label has matured."""
        from shopflow.registry import load_model
        from shopflow.warehouse import connect

        rows = self.features.set_index("user_id").loc[ids].reset_index()
        scores = load_model(self.settings, truth).predict_proba(rows)
        rng = np.random.default_rng(seed)
        buys = (scores >= np.quantile(scores, 0.6)) ^ (rng.random(len(ids)) < 0.05)
        now = datetime.now(UTC).replace(tzinfo=None)
        events = pd.DataFrame({
            "user_id": [*(u for u, b in zip(ids, buys, strict=True) if b), "someone"],
            "event_type": [*(["purchase"] * int(buys.sum())), "view"],
            "event_time": [*([now + timedelta(hours=1)] * int(buys.sum())),
                           now + self.settings.task.horizon + timedelta(days=1)],
        })
        with connect(self.settings) as wh:
            table = wh.table("staging", "stg_shop__events")
            wh.create_table(table, {"user_id": "text", "event_type": "text",
                                    "event_time": "timestamp"})
            wh.append_df(table, events)

    def readout(self, run_id: str, stage: str = "experiment_readout") -> dict[str, Any]:
        context = StageContext(run_id=run_id, dag_id="shopflow_monitoring", actor="test")
        result: dict[str, Any] = stage_function(stage)(self.settings, context)
        return result


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Experiment]:
    home = tmp_path_factory.mktemp("experiment") / "home"
    config = home.parent / "shopflow.yaml"
    port = free_port()
    config.write_text(yaml.safe_dump({
        "serving": {
            "port": port, "reload_interval": 0.5, "post_deploy_window": 1.0, "shadow": True,
            "max_p99_ms": 2000.0,
            "experiment": {"enabled": True, "share": SHARE, "salt": SALT,
                           "min_rows_per_arm": 150, "purchase_rate_tolerance": 0.15,
                           "resamples": 200},
        },
    }))
    settings = load_settings(config, home=home)
    settings.ensure_dirs()
    features = synthetic_user_features(USERS, seed=3)
    write_online_features(settings, features)
    versions = []
    for seed, promote in ((0, True), (1, False), (2, False)):  # champion, better, worse
        model, base_rate = train_tiny_model(features, seed=seed)
        versions.append(publish_model(settings, model, base_rate=base_rate, promote=promote,
                                      reason=f"model {seed}"))
    service = ServiceProcess(settings, port=port, config_path=config,
                             inherit_shopflow_env=False)
    service.start(wait=180)
    with httpx.Client(base_url=service.url, timeout=30) as client:
        try:
            yield Experiment(settings, service, client, features, champion=versions[0],
                             better=versions[1], worse=versions[2])
        finally:
            service.stop()


def test_traffic_is_split_by_a_sticky_hash_and_logged_with_arms(experiment: Experiment) -> None:
    from shopflow.serving.prediction_log import read_prediction_log

    meta = experiment.wait(lambda m: m["experiment"]["state"] == "running", "the test to run")
    assert meta["experiment"]["challenger_version"] == experiment.worse  # the newest
    assert meta["model_version"] == experiment.champion
    ids = experiment.features["user_id"].tolist()[:USERS // 2]
    answers = experiment.traffic(ids)
    versions = {CHAMPION: experiment.champion, CHALLENGER: experiment.worse}
    for uid, answer in answers.items():
        assert answer["arm"] == assign_arm(SALT, uid, SHARE)
        assert answer["model_version"] == versions[answer["arm"]]
    arms = [a["arm"] for a in answers.values()]
    assert 0.4 < arms.count(CHALLENGER) / len(arms) < 0.6
    # sticky: asked again one by one, every shopper gets its arm's model again
    for uid in ids[:30]:
        body = experiment.client.post("/predict", json={"user_ids": [uid]}).json()
        assert body["predictions"][0]["arm"] == answers[uid]["arm"]
        assert body["model_version"] == answers[uid]["model_version"]  # one arm: its model
    experiment.wait(lambda m: m["prediction_log"]["written"] >= len(ids) + 30, "the log")
    log = read_prediction_log(experiment.settings.home_dir)
    log = log[log["endpoint"] == "predict"]
    assert set(log["arm"]) == {CHAMPION, CHALLENGER}
    assert (log["model_version"] == log["arm"].map(versions)).all()
    first = log.drop_duplicates("user")
    assert first.groupby("arm").size().min() > 200
    assert (log.groupby("user")["arm"].nunique() == 1).all()


def test_a_worse_challenger_is_stopped_and_the_next_one_tested(experiment: Experiment) -> None:
    ids = experiment.features["user_id"].tolist()[:USERS // 2]
    experiment.purchases(ids, truth=experiment.champion, seed=1)
    result = experiment.readout("ab-stop")
    assert result["status"] == "stop", result["readout"]["reason"]
    readout = result["readout"]
    assert readout["challenger"]["model_version"] == experiment.worse
    assert readout["champion"]["n"] >= 150 and readout["challenger"]["n"] >= 150
    assert readout["differences"]["roc_auc"]["ci"][1] < 0
    with Ledger(experiment.settings.ledger_url) as ledger:
        event = ledger.events(version=experiment.worse)[-1]
        assert ledger.production().version == experiment.champion
    assert event.kind == "rejection" and event.details["stage"] == "experiment"
    assert event.details["readout"]["decision"] == "stop"
    # the service ends that test and starts one with the next challenger
    meta = experiment.wait(lambda m: m["experiment"]["challenger_version"] == experiment.better,
                           "the next challenger")
    assert meta["experiment"]["state"] == "running"
    with pytest.raises(StageSkipped, match="already holds the decision"):
        experiment.readout("ab-stop-retry")  # a retried task decides nothing twice


def test_the_shadow_log_is_read_the_same_way(experiment: Experiment) -> None:
    """Shadow mode scored the same (worse) challenger beside the champion's answers."""
    experiment.wait(lambda m: m["shadow"]["logged"] >= 200, "the shadow log")
    result = experiment.readout("shadow-1", stage="shadow_readout")
    assert result["challenger_version"] == experiment.worse
    assert result["champion_version"] == experiment.champion
    assert 0 <= result["agreement"] <= 1 and result["rows"] >= 200
    assert 0 < result["mean_abs_delta"] <= result["max_abs_delta"] <= 1
    assert result["matured"] >= 200 and result["labels_error"] is None
    assert result["champion_roc_auc"] > result["challenger_roc_auc"]
    assert result["roc_auc_difference"]["ci"][1] < 0  # challenger minus champion


def test_a_better_challenger_is_promoted_through_gate_3(experiment: Experiment) -> None:
    ids = experiment.features["user_id"].tolist()[USERS // 2:]
    answers = experiment.traffic(ids)
    assert {a["model_version"] for a in answers.values()} == {experiment.champion,
                                                               experiment.better}
    experiment.purchases(ids, truth=experiment.better, seed=2)
    result = experiment.readout("ab-promote")
    assert result["status"] == "promote", result["readout"]["reason"]
    readout = result["readout"]
    assert readout["challenger"]["model_version"] == experiment.better
    assert readout["differences"]["roc_auc"]["ci"][0] > 0
    assert readout["challenger"]["n"] + readout["champion"]["n"] == len(ids)  # this test's
    assert result["deploy"]["failed"] is False
    with Ledger(experiment.settings.ledger_url) as ledger:
        assert ledger.production().version == experiment.better
        promotion = [e for e in ledger.events(version=experiment.better)
                     if e.kind == "promotion"][-1]
    assert promotion.details["stage"] == "experiment"
    assert promotion.details["readout"]["differences"]["roc_auc"]["ci"][0] > 0
    meta = experiment.wait(lambda m: m["model_version"] == experiment.better
                           and m["experiment"]["state"] != "running", "the test to end")
    assert meta["experiment"]["challenger_version"] is None  # nothing newer to test
    body = experiment.client.post("/predict", json={"user_ids": ids[:3]}).json()
    assert body["model_version"] == experiment.better
    assert all("arm" not in p for p in body["predictions"])  # no test: the plain answer
