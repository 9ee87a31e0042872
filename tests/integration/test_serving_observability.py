"""The prediction log and ``GET /metrics`` on a real ``bentoml serve`` on a loopback port.

One server for the module, with its own SHOPFLOW_HOME (sandbox propensity model and
recommender). The log's flush interval is an hour, so every record the last test finds
was written by the clean shutdown (SIGTERM), not by a periodic flush. Tests run in file
order; the last one stops the server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from shopflow.privacy import IdHasher
from shopflow.serving.prediction_log import read_prediction_log, remove_user
from shopflow.serving.process import ServiceProcess
from shopflow.serving.sandbox import SANDBOX_FEATURES, build_recommender_sandbox, build_sandbox
from shopflow.settings import Settings, load_settings

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "observability-token"


@dataclass
class Stack:
    settings: Settings
    service: ServiceProcess
    user_ids: list[str]
    recommend_user: str
    version: str
    client: httpx.Client
    answers: dict[str, Any] = field(default_factory=dict)  # request id -> response body

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        response = self.client.post(path, json=body)
        if response.status_code == 200:
            self.answers[response.headers["x-request-id"]] = response.json()
        return response

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        response = self.client.get("/metrics")
        assert response.status_code == 200, response.text
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(response.text)
                for s in family.samples}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("observability") / "home"
    config = home.parent / "shopflow.yaml"
    config.write_text(yaml.safe_dump({"serving": {
        "auth_token": TOKEN, "reload_interval": 0.5, "prediction_log_flush_interval": 3600.0,
    }}))
    settings = load_settings(config, home=home)
    sandbox = build_sandbox(settings, users=20, models=1)
    recommender = build_recommender_sandbox(settings, sandbox.user_ids[:10], models=1)
    service = ServiceProcess(settings, config_path=config, inherit_shopflow_env=False)
    service.start(wait=180)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=service.url, headers=headers, timeout=10) as client:
        try:
            yield Stack(settings, service, sandbox.user_ids, recommender.user_ids[0],
                        sandbox.versions[-1], client)
        finally:
            service.stop()


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_answers_carry_distinct_request_ids(stack: Stack) -> None:
    for ids in (stack.user_ids[:3], [stack.user_ids[3], "nobody-1"], ["nobody-2"]):
        assert stack.post("/predict", {"user_ids": ids}).status_code == 200
    assert stack.post("/recommend", {"user_id": stack.recommend_user, "k": 3}).status_code == 200
    assert stack.post("/recommend", {"user_id": "nobody-3", "k": 2}).status_code == 200
    assert len(stack.answers) == 5


def test_metrics_count_requests_versions_and_cold_starts(stack: Stack) -> None:
    assert stack.client.post("/predict", json={"user_ids": []}).status_code == 422
    assert httpx.get(f"{stack.service.url}/metrics").status_code == 401
    samples = stack.scrape()
    ok = {"endpoint": "/predict", "status": "200"}
    assert _value(samples, "shopflow_http_requests_total", **ok) == 3
    assert _value(samples, "shopflow_http_requests_total", endpoint="/predict", status="422") == 1
    assert _value(samples, "shopflow_http_requests_total", endpoint="/recommend",
                  status="200") == 2
    assert _value(samples, "shopflow_http_request_duration_seconds_count", **ok) == 3
    assert _value(samples, "shopflow_http_request_duration_seconds_bucket", le="+Inf", **ok) == 3
    assert _value(samples, "shopflow_model_info", model="propensity", version=stack.version) == 1
    assert _value(samples, "shopflow_model_swaps_total", model="propensity") == 1
    assert _value(samples, "shopflow_model_refusals_total", model="propensity") == 0
    predicted = {"endpoint": "/predict", "model_version": stack.version}
    assert _value(samples, "shopflow_predictions_total", known_user="true", **predicted) == 4
    assert _value(samples, "shopflow_predictions_total", known_user="false", **predicted) == 2
    assert _value(samples, "shopflow_prediction_score_count", model_version=stack.version) == 6
    assert _value(samples, "shopflow_prediction_log_records_total", outcome="dropped") == 0
    meta = stack.client.get("/metadata").json()["prediction_log"]
    assert meta["pending"] == 5 and meta["written"] == 0  # an hour's flush interval


def test_a_clean_shutdown_writes_every_answer(stack: Stack) -> None:
    stack.service.stop()  # SIGTERM: the worker's shutdown hook drains and fsyncs the log
    home = stack.settings.home_dir
    frame = read_prediction_log(home)
    hasher = IdHasher(home)
    assert set(frame["request_id"]) == set(stack.answers)
    predict = frame[frame["endpoint"] == "predict"]
    assert len(predict) == 6
    for request_id, rows in predict.groupby("request_id"):
        answer = stack.answers[request_id]
        assert rows["row"].tolist() == list(range(len(answer["predictions"])))
        assert rows["user"].tolist() == [hasher(p["user_id"]) for p in answer["predictions"]]
        assert rows["score"].tolist() == [p["purchase_probability"]
                                          for p in answer["predictions"]]
        assert rows["known_user"].tolist() == [p["known_user"] for p in answer["predictions"]]
        assert set(rows["model_version"]) == {answer["model_version"]}
        for features, known in zip(rows["features"], rows["known_user"], strict=True):
            assert list(features) == list(SANDBOX_FEATURES)
            assert any(v is not None for v in features.values()) == known
    recommend = frame[frame["endpoint"] == "recommend"]
    for request_id, row in zip(recommend["request_id"], recommend.itertuples(), strict=True):
        answer = stack.answers[request_id]
        assert row.items == [{"item_id": i["item_id"], "rank": i["rank"], "score": i["score"]}
                             for i in answer["items"]]
        assert row.known_user == (not answer["cold_start"])
    # erasure by hashed id, for ``shopflow forget``
    first = hasher(stack.user_ids[0])
    rows = int((frame["user"] == first).sum())  # /predict, and /recommend if it is that user
    assert rows >= 1 and remove_user(home, first) == rows
    assert first not in set(read_prediction_log(home)["user"])
