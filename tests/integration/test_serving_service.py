"""The Shopflow service over real HTTP: a real ``bentoml serve`` on a loopback port.

One server per module (it takes a while to start on two cores), with its own
SHOPFLOW_HOME holding a real Feast online store, model store and ledger. The tests run in
file order: the later ones move the production alias and rely on the earlier state only
through what they set up themselves.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml

from shopflow.ledger import Ledger
from shopflow.serving.process import ServiceProcess
from shopflow.serving.sandbox import (
    build_sandbox,
    publish_model,
    synthetic_user_features,
    train_tiny_model,
)
from shopflow.settings import Settings, load_settings

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "test-token-123"
MAX_BATCH = 50
RELOAD = 0.5


@dataclass
class Stack:
    settings: Settings
    service: ServiceProcess
    user_ids: list[str]
    first_version: str
    client: httpx.Client
    anonymous: httpx.Client
    extra: dict[str, Any] = field(default_factory=dict)

    def predict(self, ids: list[Any]) -> httpx.Response:
        return self.client.post("/predict", json={"user_ids": ids})

    def metadata(self) -> dict[str, Any]:
        response = self.client.get("/metadata")
        response.raise_for_status()
        return response.json()

    def wait_for(self, version: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.metadata()["model_version"] == version:
                return
            time.sleep(0.1)
        raise AssertionError(f"service did not switch to {version}: {self.metadata()}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("serving") / "home"
    config = home.parent / "shopflow.yaml"
    config.write_text(yaml.safe_dump({"serving": {
        "reload_interval": RELOAD, "auth_token": TOKEN, "max_batch": MAX_BATCH,
        "shadow": True, "post_deploy_window": 1.0, "max_p99_ms": 2000.0,
    }}))
    settings = load_settings(config, home=home)
    sandbox = build_sandbox(settings, users=60, models=1)
    service = ServiceProcess(settings, config_path=config, inherit_shopflow_env=False)
    service.start(wait=180)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=service.url, headers=headers, timeout=10) as client, \
            httpx.Client(base_url=service.url, timeout=10) as anonymous:
        try:
            yield Stack(settings, service, sandbox.user_ids, sandbox.versions[-1], client,
                        anonymous)
        finally:
            service.stop()


def test_probes_are_open_and_report_readiness(stack: Stack) -> None:
    assert stack.anonymous.get("/healthz").status_code == 200
    assert stack.anonymous.get("/readyz").status_code == 200
    meta = stack.metadata()
    assert meta["model_version"] == stack.first_version
    assert meta["model"]["feature_service"] == "propensity_v2"
    assert meta["model"]["trained_at"]
    assert meta["model"]["metrics"]["roc_auc"] == pytest.approx(0.5)


def test_auth_is_required_everywhere_but_probes(stack: Stack) -> None:
    for response in (
        stack.anonymous.post("/predict", json={"user_ids": ["1"]}),
        stack.anonymous.get("/metadata"),
        stack.anonymous.post("/predict", json={"user_ids": ["1"]},
                             headers={"Authorization": "Bearer wrong"}),
    ):
        assert response.status_code == 401
        assert "bearer token" in response.json()["error"]
        assert response.headers["www-authenticate"] == "Bearer"


def test_known_and_unknown_users(stack: Stack) -> None:
    known = stack.user_ids[:3]
    response = stack.predict([*known, "no-such-user", int(known[0])])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == stack.first_version
    predictions = body["predictions"]
    assert [p["user_id"] for p in predictions] == [*known, "no-such-user", known[0]]
    assert [p["known_user"] for p in predictions] == [True, True, True, False, True]
    assert all(0.0 <= p["purchase_probability"] <= 1.0 for p in predictions)
    # the integer id is read as its text: same user, same score
    assert predictions[4]["purchase_probability"] == predictions[0]["purchase_probability"]
    cold = stack.metadata()["model"]["cold_start_probability"]
    assert predictions[3]["purchase_probability"] == pytest.approx(cold)


def test_bentoml_client_and_openapi(stack: Stack) -> None:
    import bentoml

    with bentoml.SyncHTTPClient(stack.service.url, token=TOKEN, timeout=10) as client:
        answer = client.predict(user_ids=[stack.user_ids[0], 12345])
    body = answer if isinstance(answer, dict) else answer.model_dump()
    assert body["model_version"] == stack.first_version
    assert [p["user_id"] for p in body["predictions"]] == [stack.user_ids[0], "12345"]
    spec = stack.client.get("/docs.json").json()
    schema = spec["paths"]["/predict"]["post"]
    assert "requestBody" in schema and "200" in schema["responses"]


@pytest.mark.parametrize(
    ("body", "field_hint"),
    [
        ({"user_ids": []}, "user_ids"),
        ({}, "user_ids"),
        ({"user_ids": "17850"}, "user_ids"),
        ({"user_ids": ["1", 2.5]}, "user_ids[1]"),
        ({"user_ids": [None]}, "user_ids[0]"),
        ({"user_ids": [True]}, "user_ids[0]"),
        ({"user_ids": [{"id": 1}]}, "user_ids[0]"),
        ({"user_ids": ["1"], "extra": 1}, "extra"),
        ({"user_ids": ["1", "x" * 65]}, "user_ids[1]: String should have at most 64"),
        ({"user_ids": [2**70]}, "user_ids[0]: Input should be less than or equal to"),
    ],
)
def test_invalid_input_is_422_naming_the_field(stack: Stack, body: dict[str, Any],
                                                field_hint: str) -> None:
    response = stack.client.post("/predict", json=body)
    assert response.status_code == 422, response.text
    message = response.json()["error"]
    assert field_hint in message
    assert "Traceback" not in response.text


def test_malformed_json_is_a_clean_4xx(stack: Stack) -> None:
    response = stack.client.post("/predict", content=b"{not json",
                                 headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500
    assert "error" in response.json()
    assert "Traceback" not in response.text


def test_oversize_batch_and_body_are_413(stack: Stack) -> None:
    response = stack.predict([str(i) for i in range(MAX_BATCH + 1)])
    assert response.status_code == 413
    assert str(MAX_BATCH) in response.json()["error"]
    huge = b'{"user_ids": ["' + b"x" * 200_000 + b'"]}'
    response = stack.client.post("/predict", content=huge,
                                 headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "limit" in response.json()["error"]


class _Load:
    """Two callers posting for a bounded time; every answer is kept."""

    def __init__(self, stack: Stack, ids: list[str], seconds: float) -> None:
        self.stack, self.ids, self.seconds = stack, ids, seconds
        self.answers: list[tuple[float, int, str | None]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(2)]

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        deadline = time.monotonic() + self.seconds
        with httpx.Client(base_url=self.stack.service.url, headers=headers, timeout=10) as client:
            while time.monotonic() < deadline and not self._stop.is_set():
                try:
                    response = client.post("/predict", json={"user_ids": self.ids})
                    version = response.json().get("model_version") if response.status_code == 200 else None
                    status = response.status_code
                except httpx.HTTPError:
                    status, version = 0, None
                with self._lock:
                    self.answers.append((time.monotonic(), status, version))

    def wait_answers(self, version: str, count: int, timeout: float = 30.0) -> None:
        """Block until ``count`` answers came from ``version`` after this call."""
        with self._lock:
            start = len(self.answers)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                seen = sum(1 for _, _, v in self.answers[start:] if v == version)
            if seen >= count:
                return
            time.sleep(0.05)
        raise AssertionError(f"fewer than {count} answers from {version} in {timeout} s")

    def __enter__(self) -> _Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.seconds + 15)


def test_promotion_and_rollback_under_load(stack: Stack) -> None:
    from shopflow.deploy import rollback

    ids = [*stack.user_ids[:5], "cold-start-user"]
    before = stack.predict(ids).json()
    assert before["model_version"] == stack.first_version
    frame = synthetic_user_features(60, seed=0)
    model, base_rate = train_tiny_model(frame, seed=11, c=5.0)
    with _Load(stack, ids, seconds=90) as load:
        load.wait_answers(stack.first_version, 5)
        second = publish_model(stack.settings, model, base_rate=base_rate, reason="better")
        load.wait_answers(second, 5)
        rollback(stack.settings, reason="test rollback", actor="pytest")
        load.wait_answers(stack.first_version, 5)
    statuses = [status for _, status, _ in load.answers]
    versions = [version for _, _, version in load.answers]
    assert statuses.count(200) == len(statuses), f"failed requests: {set(statuses)}"
    assert second in versions and versions[-1] == stack.first_version
    # the switch is visible in order: first model, then the second, then the first again
    assert versions.index(second) > 0
    assert max(i for i, v in enumerate(versions) if v == second) < len(versions) - 1
    # same inputs, exactly the same outputs as that model gave before
    after = stack.predict(ids).json()
    assert after == before
    events = Ledger(stack.settings.ledger_url).events(kind="rollback")
    assert events[-1].version == stack.first_version and events[-1].reason == "test rollback"
    stack.extra["second"] = second


def test_shadow_mode_logs_champion_and_challenger(stack: Stack) -> None:
    from shopflow.serving.shadow import read_shadow_log

    second = stack.extra.get("second")
    if second is None:
        pytest.skip("needs the promotion test's second model as the challenger")
    deadline = time.monotonic() + 30
    records: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        stack.predict(stack.user_ids[:2])
        records = [r for r in read_shadow_log(stack.settings.reports_dir)
                   if r["challenger_version"] == second]
        if records:
            break
        time.sleep(0.3)
    assert records, f"no shadow records; metadata: {stack.metadata()['shadow']}"
    record = records[-1]
    assert record["champion_version"] == stack.first_version
    assert 0 <= record["challenger"] <= 1 and 0 <= record["champion"] <= 1
    assert record["user"] not in stack.user_ids  # hashed, not the raw id


def _refused_reason(stack: Stack, version: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for refusal in stack.metadata()["refused"]:
            if refusal["version"] == version:
                return refusal["reason"]
        time.sleep(0.1)
    raise AssertionError(f"{version} was not refused: {stack.metadata()}")


def _assert_still_serving_first(stack: Stack) -> None:
    response = stack.predict(stack.user_ids[:2])
    assert response.status_code == 200
    assert response.json()["model_version"] == stack.first_version


def test_corrupt_model_is_refused_and_old_one_keeps_serving(stack: Stack) -> None:
    from shopflow.deploy import rollback
    from shopflow.registry import model_info

    frame = synthetic_user_features(60, seed=0)
    model, base_rate = train_tiny_model(frame, seed=3)
    broken = publish_model(stack.settings, model, base_rate=base_rate, promote=False)
    path = Path(model_info(stack.settings, broken).path) / "model.pkl"
    path.write_bytes(b"this is not a pickle")
    Ledger(stack.settings.ledger_url).promote(broken, actor="pytest", reason="corrupt")
    reason = _refused_reason(stack, broken)
    assert "sha256" in reason  # changed after registration: refused before unpickling
    _assert_still_serving_first(stack)
    rejections = Ledger(stack.settings.ledger_url).events(kind="rejection", version=broken)
    # the integrity refusal (digests) and the service's hot-swap refusal
    assert {e.details.get("gate") or e.details.get("stage") for e in rejections} == {
        "integrity", "serving"}
    rollback(stack.settings, to_version=stack.first_version, reason="undo corrupt", actor="pytest")


def test_feature_service_mismatch_is_refused(stack: Stack) -> None:
    from shopflow.deploy import rollback

    frame = synthetic_user_features(60, seed=0)
    model, base_rate = train_tiny_model(frame, seed=4, feature_service="propensity_v9")
    wrong = publish_model(stack.settings, model, base_rate=base_rate, reason="wrong service")
    assert "propensity_v9" in _refused_reason(stack, wrong)
    _assert_still_serving_first(stack)
    rollback(stack.settings, to_version=stack.first_version, reason="undo", actor="pytest")
    model, base_rate = train_tiny_model(frame, seed=5, feature_names=("recency_days", "not_a_feature"))
    missing = publish_model(stack.settings, model, base_rate=base_rate, reason="unknown column")
    assert "not_a_feature" in _refused_reason(stack, missing)
    _assert_still_serving_first(stack)
    rollback(stack.settings, to_version=stack.first_version, reason="undo", actor="pytest")


def test_gate3_deploys_a_good_model_and_never_lets_a_broken_one_reach_production(
        stack: Stack) -> None:
    from shopflow.deploy import DeployFailed, deploy
    from shopflow.registry import model_info

    ledger = Ledger(stack.settings.ledger_url)
    frame = synthetic_user_features(60, seed=0)
    model, base_rate = train_tiny_model(frame, seed=21)
    good = publish_model(stack.settings, model, base_rate=base_rate, promote=False)
    report = deploy(stack.settings, good, actor="pytest", reason="gate 3 test",
                    url=stack.service.url, golden_user_ids=stack.user_ids[:3])
    assert report.golden_ok and report.errors == 0 and report.requests > 0
    assert report.p99_ms is not None
    deployment = ledger.events(kind="deployment")[-1]
    assert deployment.version == good and deployment.details["requests"] == report.requests

    bad = publish_model(stack.settings, model, base_rate=base_rate, promote=False)
    (Path(model_info(stack.settings, bad).path) / "model.pkl").write_bytes(b"garbage")
    with pytest.raises(DeployFailed) as failure:
        deploy(stack.settings, bad, actor="pytest", reason="broken on purpose",
               url=stack.service.url)
    assert failure.value.report.rolled_back_to == good  # the service went back to it
    assert ledger.production().version == good  # production never held the broken model
    assert ledger.pending() is None
    (dropped,) = [e for e in ledger.events(kind="rejection", version=bad)
                  if e.details.get("stage") == "post_deploy"]
    assert "gate 3" in dropped.reason and dropped.details["alias"] == "candidate"
    assert not [e for e in ledger.events(kind="rollback") if e.previous_version == bad]
    assert stack.predict(stack.user_ids[:1]).json()["model_version"] == good


def test_a_deploy_pending_candidate_passes_gate3_then_takes_production(stack: Stack) -> None:
    """What a run without a service leaves behind, deployed once the service answers."""
    from shopflow.deploy import deploy_pending

    ledger = Ledger(stack.settings.ledger_url)
    before = ledger.production().version
    model, base_rate = train_tiny_model(synthetic_user_features(60, seed=0), seed=33)
    waiting = publish_model(stack.settings, model, base_rate=base_rate, promote=False)
    ledger.nominate(waiting, actor="gate2", reason="beats production",
                    expected_current=before)
    assert ledger.production().version == before  # pending: nothing moved yet
    report = deploy_pending(stack.settings, actor="pytest", url=stack.service.url,
                            golden_user_ids=stack.user_ids[:3])
    assert report is not None and report.golden_ok and report.requests > 0
    assert ledger.production().version == waiting and ledger.pending() is None
    deployment = ledger.events(kind="deployment")[-1]
    assert (deployment.version, deployment.previous_version) == (waiting, before)
    assert deployment.details["alias"] == "production"
    assert stack.metadata()["model_version"] == waiting
    assert deploy_pending(stack.settings, actor="pytest", url=stack.service.url) is None
