"""The service's own Prometheus metrics: counts, histograms, and a valid text format."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from shopflow.serving.metrics import (
    Histogram,
    PredictionMetrics,
    RequestMetrics,
    counter_lines,
    model_lines,
    render,
)
from shopflow.serving.middleware import FrontDoorMiddleware

if TYPE_CHECKING:
    from starlette.requests import Request


def _samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, keyed by name and sorted labels (parsing validates it)."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples}


def _get(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_histogram_buckets_are_inclusive_and_cumulative() -> None:
    histogram = Histogram((0.1, 0.5))
    for value in (0.1, 0.2, 0.5, 0.7):
        histogram.observe(value)
    lines = list(histogram.lines("h", 'a="b"'))
    assert lines[:3] == ['h_bucket{a="b",le="0.1"} 1', 'h_bucket{a="b",le="0.5"} 3',
                         'h_bucket{a="b",le="+Inf"} 4']
    assert lines[-1] == 'h_count{a="b"} 4' and histogram.count == 4


def test_scrape_parses_and_counts_what_was_served() -> None:
    requests = RequestMetrics(["/predict"])
    requests.observe("/predict", 200, 0.002)
    requests.observe("/predict", 200, 0.004)
    requests.observe("/predict", 422, 0.001)
    requests.observe("/wp-admin", 404, 0.001)  # unknown paths share one label
    scores = PredictionMetrics()
    scores.observe_predict("v1", [0.2, 0.9, 0.04], [True, True, False])
    scores.observe_recommend("r1", cold_start=True)
    body = render([requests.lines(), scores.lines(),
                   model_lines([("propensity", "v1", 2, 1), ("recommender", None, 0, 0)]),
                   counter_lines("shopflow_prediction_log_records_total", "Records.",
                                 {"written": 5, "dropped": 0, "failed": 0})])
    samples = _samples(body)
    assert _get(samples, "shopflow_http_requests_total", endpoint="/predict", status="200") == 2
    assert _get(samples, "shopflow_http_requests_total", endpoint="other", status="404") == 1
    assert _get(samples, "shopflow_http_request_duration_seconds_bucket", endpoint="/predict",
                status="200", le="0.0025") == 1
    assert _get(samples, "shopflow_http_request_duration_seconds_count", endpoint="/predict",
                status="200") == 2
    assert _get(samples, "shopflow_predictions_total", endpoint="/predict", model_version="v1",
                known_user="false") == 1
    assert _get(samples, "shopflow_predictions_total", endpoint="/recommend",
                model_version="r1", known_user="false") == 1
    assert _get(samples, "shopflow_prediction_score_bucket", model_version="v1", le="0.05") == 1
    assert _get(samples, "shopflow_prediction_score_count", model_version="v1") == 3
    assert _get(samples, "shopflow_model_info", model="propensity", version="v1") == 1
    assert ("shopflow_model_info", (("model", "recommender"), ("version", "None"))) not in samples
    assert _get(samples, "shopflow_model_swaps_total", model="propensity") == 2
    assert _get(samples, "shopflow_model_refusals_total", model="propensity") == 1
    assert _get(samples, "shopflow_prediction_log_records_total", outcome="written") == 5


async def _ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def test_front_door_times_requests_and_serves_metrics_behind_auth() -> None:
    app = Starlette(routes=[Route("/predict", _ok, methods=["POST"])])
    metrics = RequestMetrics(["/predict", "/metrics"])
    door = FrontDoorMiddleware(app, auth_token="t", metrics=metrics,
                               collect=lambda: [["# extra", "shopflow_extra 1"]])
    auth = {"Authorization": "Bearer t"}
    with TestClient(door) as client:
        assert client.post("/predict", headers=auth).status_code == 200
        assert client.post("/predict").status_code == 401
        assert client.get("/metrics").status_code == 401
        assert client.post("/metrics", headers=auth).status_code == 405
        response = client.get("/metrics", headers=auth)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = _samples(response.content)
    assert _get(samples, "shopflow_http_requests_total", endpoint="/predict", status="200") == 1
    assert _get(samples, "shopflow_http_requests_total", endpoint="/predict", status="401") == 1
    assert _get(samples, "shopflow_extra") == 1


def test_without_metrics_the_path_is_the_app_s() -> None:
    app = Starlette(routes=[Route("/predict", _ok, methods=["POST"])])
    with TestClient(FrontDoorMiddleware(app)) as client:
        assert client.get("/metrics").status_code == 404
