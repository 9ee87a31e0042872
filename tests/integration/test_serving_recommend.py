"""``POST /recommend`` over real HTTP: a real ``bentoml serve`` on a loopback port.

One server for the module, with its own SHOPFLOW_HOME: a sandbox propensity model (the
service needs one to be ready) and a stored, promoted sandbox recommender whose
precomputed lists are known to the test. Later tests move the recommender's alias in the
shared ledger and rely only on what they set up themselves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml

from shopflow.ledger import Ledger
from shopflow.serving.process import ServiceProcess
from shopflow.serving.sandbox import (
    RecommenderSandbox,
    build_recommender_sandbox,
    build_sandbox,
    publish_recommender,
    synthetic_recommender_snapshot,
)
from shopflow.settings import Settings, load_settings

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "recommend-token"
RELOAD = 0.5


@dataclass
class Stack:
    settings: Settings
    service: ServiceProcess
    recommender: RecommenderSandbox
    propensity_version: str
    client: httpx.Client
    anonymous: httpx.Client

    @property
    def first(self) -> str:
        return self.recommender.versions[-1]

    def recommend(self, body: dict[str, Any]) -> httpx.Response:
        return self.client.post("/recommend", json=body)

    def served(self) -> dict[str, Any]:
        response = self.client.get("/metadata")
        response.raise_for_status()
        return response.json()["recommender"]

    def wait_for(self, version: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.served()["model_version"] == version:
                return
            time.sleep(0.1)
        raise AssertionError(f"service did not switch to recommender {version}: {self.served()}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("serving_recommend") / "home"
    config = home.parent / "shopflow.yaml"
    config.write_text(yaml.safe_dump({"serving": {"reload_interval": RELOAD,
                                                  "auth_token": TOKEN}}))
    settings = load_settings(config, home=home)
    sandbox = build_sandbox(settings, users=20, models=1)
    recommender = build_recommender_sandbox(settings, sandbox.user_ids[:10], models=1)
    service = ServiceProcess(settings, config_path=config, inherit_shopflow_env=False)
    service.start(wait=180)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=service.url, headers=headers, timeout=10) as client, \
            httpx.Client(base_url=service.url, timeout=10) as anonymous:
        try:
            yield Stack(settings, service, recommender, sandbox.versions[-1], client, anonymous)
        finally:
            service.stop()


def test_known_user_gets_k_ranked_items_with_scores_and_the_version(stack: Stack) -> None:
    user = stack.recommender.user_ids[0]
    response = stack.recommend({"user_id": user, "k": 7})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == stack.first
    assert body["user_id"] == user and body["cold_start"] is False
    items = body["items"]
    assert [i["rank"] for i in items] == list(range(1, 8))
    scores = [i["score"] for i in items]
    assert scores == sorted(scores, reverse=True)
    assert len({i["item_id"] for i in items}) == 7
    # the default k is 10, and an integer id is read as its text
    default = stack.recommend({"user_id": int(user)}).json()
    assert default["user_id"] == user and len(default["items"]) == 10
    assert [i["item_id"] for i in default["items"][:7]] == [i["item_id"] for i in items]


def test_cold_start_users_get_popular_items_flagged(stack: Stack) -> None:
    body = stack.recommend({"user_id": "never-seen", "k": 5}).json()
    assert body["cold_start"] is True and body["model_version"] == stack.first
    assert len(body["items"]) == 5
    known = stack.recommend({"user_id": stack.recommender.user_ids[1], "k": 5}).json()
    assert {i["item_id"] for i in body["items"]} != {i["item_id"] for i in known["items"]}


def test_exclude_purchased_removes_bought_items(stack: Stack) -> None:
    user = stack.recommender.user_ids[2]
    bought = set(stack.recommender.purchased[user])
    plain = stack.recommend({"user_id": user, "k": 10}).json()
    assert bought & {i["item_id"] for i in plain["items"]}  # bought items are in its top 10
    excluded = stack.recommend({"user_id": user, "k": 10, "exclude_purchased": True}).json()
    assert len(excluded["items"]) == 10
    assert not bought & {i["item_id"] for i in excluded["items"]}


@pytest.mark.parametrize(
    ("body", "field_hint"),
    [
        ({}, "user_id"),
        ({"k": 5}, "user_id"),
        ({"user_id": ""}, "user_id"),
        ({"user_id": "  "}, "user_id"),
        ({"user_id": None}, "user_id"),
        ({"user_id": 1.5}, "user_id"),
        ({"user_id": "1", "k": 0}, "k"),
        ({"user_id": "1", "k": 101}, "k"),
        ({"user_id": "1", "k": "ten"}, "k"),
        ({"user_id": "1", "k": 2.5}, "k"),
        ({"user_id": "1", "exclude_purchased": "maybe"}, "exclude_purchased"),
        ({"user_id": "1", "extra": 1}, "extra"),
        ({"user_id": "u" * 65}, "user_id: String should have at most 64"),
    ],
)
def test_invalid_input_is_422_naming_the_field(stack: Stack, body: dict[str, Any],
                                                field_hint: str) -> None:
    response = stack.recommend(body)
    assert response.status_code == 422, response.text
    assert field_hint in response.json()["error"]
    assert "Traceback" not in response.text


def test_auth_applies_to_recommend(stack: Stack) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = stack.anonymous.post("/recommend", json={"user_id": "1"}, headers=headers)
        assert response.status_code == 401
        assert "bearer token" in response.json()["error"]


def test_metadata_has_a_recommender_section(stack: Stack) -> None:
    served = stack.served()
    assert served["model_version"] == stack.first and served["fallback"] is False
    assert served["users"] == len(stack.recommender.user_ids)
    assert served["metrics"]["ndcg@10"] == pytest.approx(0.1)
    meta = stack.client.get("/metadata").json()
    assert meta["model_version"] == stack.propensity_version  # /predict is unaffected


def test_promotion_hot_swaps_and_rollback_swaps_back(stack: Stack) -> None:
    from shopflow.deploy import rollback

    user = stack.recommender.user_ids[0]
    before = stack.recommend({"user_id": user}).json()
    snapshot = synthetic_recommender_snapshot(stack.recommender.user_ids, seed=99)
    second = publish_recommender(stack.settings, snapshot, reason="second recommender")
    stack.wait_for(second)
    after = stack.recommend({"user_id": user}).json()
    assert after["model_version"] == second and after["items"] != before["items"]
    predict = stack.client.post("/predict", json={"user_ids": [user]}).json()
    assert predict["model_version"] == stack.propensity_version  # the other alias stayed
    result = rollback(stack.settings, reason="recommender test rollback", actor="pytest",
                      model="recommender")
    assert (result.from_version, result.to_version) == (second, stack.first)
    stack.wait_for(stack.first)
    assert stack.recommend({"user_id": user}).json() == before
    with Ledger(stack.settings.ledger_url) as ledger:
        assert ledger.production().version == stack.propensity_version
        event = ledger.events(kind="rollback", model="recommender")[-1]
        assert (event.version, event.previous_version) == (stack.first, second)


def test_broken_recommender_is_refused_and_the_old_one_keeps_serving(stack: Stack) -> None:
    from shopflow.deploy import rollback
    from shopflow.recommend.store import list_recommenders

    snapshot = synthetic_recommender_snapshot(stack.recommender.user_ids, seed=7)
    broken = publish_recommender(stack.settings, snapshot, promote=False)
    path = next(m.path for m in list_recommenders(stack.settings) if m.version == broken)
    (Path(path) / "model.pkl").write_bytes(b"not a pickle")
    with Ledger(stack.settings.ledger_url, model="recommender") as ledger:
        ledger.promote(broken, actor="pytest", reason="corrupt on purpose")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not stack.served()["refused"]:
        time.sleep(0.1)
    refused = stack.served()["refused"]
    assert refused and refused[-1]["version"] == broken
    assert "sha256" in refused[-1]["reason"]  # changed after registration: not unpickled
    body = stack.recommend({"user_id": stack.recommender.user_ids[0]}).json()
    assert body["model_version"] == stack.first
    with Ledger(stack.settings.ledger_url) as ledger:
        rejection = ledger.events(kind="rejection", model="recommender")[-1]
        assert rejection.version == broken and rejection.details["stage"] == "serving"
        assert ledger.events(kind="rejection") == []  # nothing in propensity's history
    rollback(stack.settings, to_version=stack.first, reason="undo corrupt", actor="pytest",
             model="recommender")
