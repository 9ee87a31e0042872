"""Hostile input against a real ``bentoml serve``: a bounded fuzz from the OpenAPI schema,
then the inputs a person would try by hand. Nothing may answer 5xx or crash the server.

The fuzz is Schemathesis: every operation of the service's own ``/docs.json``, valid
bodies (the schema's) and invalid ones (the schema negated), a fixed number of examples
each, derandomised, so a run is repeatable and takes well under a minute. The online
store holds two shoppers whose features are infinite or NaN (what a corrupt record or a
ratio over a zero count looks like): they are scored like anyone else.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest
import yaml

from shopflow.contract import MAX_ID_LENGTH
from shopflow.serving.process import ServiceProcess
from shopflow.serving.sandbox import (
    build_recommender_sandbox,
    publish_model,
    synthetic_user_features,
    train_tiny_model,
    write_online_features,
)
from shopflow.settings import load_settings

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "fuzz-token"
MAX_BATCH = 20
EXAMPLES = 40  # per operation and generation mode: ~300 requests in all


@dataclass
class Server:
    service: ServiceProcess
    client: httpx.Client
    known: list[str]
    hostile_users: list[str]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("hostile") / "home"
    config = home.parent / "shopflow.yaml"
    config.write_text(yaml.safe_dump({"serving": {"auth_token": TOKEN, "max_batch": MAX_BATCH,
                                                  "reload_interval": 5.0}}))
    settings = load_settings(config, home=home)
    settings.ensure_dirs()
    frame = synthetic_user_features(30, seed=3)
    model, base_rate = train_tiny_model(frame, seed=3)
    # after training: two shoppers whose online rows are broken
    numeric = [c for c in frame.columns if c not in {"user_id", "event_timestamp"}
               and np.issubdtype(frame[c].dtype, np.floating)]
    frame.loc[0, numeric] = math.inf
    frame.loc[1, numeric[: len(numeric) // 2]] = -math.inf
    frame.loc[1, numeric[len(numeric) // 2:]] = math.nan
    write_online_features(settings, frame)
    publish_model(settings, model, base_rate=base_rate, reason="hostile-input sandbox")
    build_recommender_sandbox(settings, frame["user_id"].astype(str).tolist()[:10])
    service = ServiceProcess(settings, config_path=config, inherit_shopflow_env=False)
    service.start(wait=180)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        with httpx.Client(base_url=service.url, headers=headers, timeout=30) as client:
            ids = frame["user_id"].astype(str).tolist()
            yield Server(service, client, ids[2:], ids[:2])
    finally:
        service.stop()


def _assert_clean(response: Any, what: str) -> None:
    """No 5xx, a JSON body, and no stack trace in it."""
    status = response.status_code
    assert status < 500, f"{what}: {status} {response.text[:500]}"
    text = response.text
    assert "Traceback" not in text, f"{what}: {text[:500]}"
    if status >= 400:
        body = json.loads(text)
        assert isinstance(body, dict) and isinstance(body.get("error"), str), f"{what}: {text}"


def test_infinite_and_nan_features_are_scored_as_missing(server: Server) -> None:
    response = server.client.post("/predict",
                                  json={"user_ids": [*server.hostile_users, server.known[0]]})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["known_user"] for p in predictions] == [True, True, True]
    for p in predictions:
        assert 0.0 <= p["purchase_probability"] <= 1.0


def test_openapi_fuzz_finds_no_server_error(server: Server) -> None:
    import schemathesis
    from schemathesis import GenerationMode

    spec = server.client.get("/docs.json").json()
    schema = schemathesis.openapi.from_dict(spec)
    statuses: dict[str, dict[int, int]] = {}
    fuzzed = []
    for result in schema.get_all_operations():
        operation = result.ok()
        fuzzed.append(f"{operation.method.upper()} {operation.path}")
        # an operation without a body or parameters has no invalid input to generate
        has_input = bool(operation.body) or any(True for _ in operation.iter_parameters())
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)[:1 + has_input]:
            seen = statuses.setdefault(f"{operation.method.upper()} {operation.path} {mode.value}",
                                       {})
            _fuzz(server, operation.as_strategy(generation_mode=mode), seen)
    assert {"POST /predict", "POST /recommend"} <= set(fuzzed), fuzzed
    print(json.dumps(statuses, indent=1, sort_keys=True))  # shown with pytest -s
    assert server.service.process is not None and server.service.process.poll() is None
    assert server.client.get("/healthz").status_code == 200


def _fuzz(server: Server, strategy: Any, seen: dict[int, int]) -> None:
    """Send ``EXAMPLES`` cases drawn from ``strategy``; count the statuses in ``seen``."""
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def probe(case: Any) -> None:
        response = case.call(base_url=server.service.url,
                             headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        _assert_clean(response, f"{case.method} {case.path} {case.body!r:.300}")

    probe()


# What a person would try by hand: (body bytes, content type, expected status, hint).
HOSTILE: list[tuple[bytes, str, int, str]] = [
    (b'{"user_ids": [NaN]}', "application/json", 422, "user_ids[0]"),
    (b'{"user_ids": [Infinity, -Infinity]}', "application/json", 422, "user_ids[0]"),
    (b'{"user_ids": [1e308]}', "application/json", 422, "user_ids[0]"),
    (b'{"user_ids": [1.0]}', "application/json", 422, "user_ids[0]"),
    (b'{"user_ids": ["' + b"x" * (MAX_ID_LENGTH + 1) + b'"]}', "application/json", 422,
     f"at most {MAX_ID_LENGTH}"),
    (b'{"user_ids": [' + b"9" * 400 + b"]}", "application/json", 422, "user_ids[0]"),
    (b'{"user_ids": ' + b"[" * 1500 + b"]" * 1500 + b"}", "application/json", 400, ""),
    (b'{"user_ids": ["\\u0000", "a\\tb"]}', "application/json", 200, ""),
    (b'{"user_ids": ["1", ""]}', "application/json", 422, "user_ids[1]: must be a non-empty"),
    (b'{"user_ids": [" \\t\\u001c\\u3000"]}', "application/json", 422, "user_ids[0]"),
    (b'{"user_ids": ["\\ud800"]}', "application/json", 400, "Invalid JSON"),  # lone surrogate
    ('{"user_ids": ["\u00e9\u6f22\U0001f600"]}'.encode(), "application/json", 200, ""),
    (b'{"user_ids": ["a"], "user_ids": ["b"]}', "application/json", 200, ""),
    (b"\xff\xfe\x00garbage", "application/json", 400, ""),
    (b"", "application/json", 400, ""),
    (b"null", "application/json", 422, ""),
    (b"[]", "application/json", 422, ""),
    (b'"user_ids"', "application/json", 422, ""),
    (b'{"user_ids": ["1"]}', "text/plain", 415, "application/json"),
    (b'{"user_ids": ["1"]}', "application/x-www-form-urlencoded", 415, "application/json"),
    (b'{"user_ids": ["1"]}', "multipart/form-data; boundary=x", 415, "application/json"),
    (b"\x80\x04K\x01.", "application/vnd.bentoml+pickle", 415, "application/json"),
]


@pytest.mark.parametrize(("body", "content_type", "expected", "hint"), HOSTILE,
                         ids=[f"{i}-{b[:24]!r}" for i, (b, *_) in enumerate(HOSTILE)])
def test_hand_written_hostile_bodies(server: Server, body: bytes, content_type: str,
                                     expected: int, hint: str) -> None:
    response = server.client.post("/predict", content=body,
                                  headers={"Content-Type": content_type})
    _assert_clean(response, repr(body[:80]))
    if expected == 400:  # any clean client error: BentoML decides 400 or 415/422
        assert 400 <= response.status_code < 500, response.text
    else:
        assert response.status_code == expected, response.text
    if hint:
        assert hint in response.json()["error"]


@pytest.mark.parametrize("body", [
    {"user_id": "1", "k": math.inf}, {"user_id": "1", "k": -1}, {"user_id": "1", "k": 10**30},
    {"user_id": "1", "k": 1.5}, {"user_id": "1", "k": "10"}, {"user_id": math.nan},
    {"user_id": " "}, {"user_id": "1", "exclude_purchased": "yes"},
])
def test_hostile_recommend_bodies_are_4xx(server: Server, body: dict[str, Any]) -> None:
    content = json.dumps(body).encode()  # json.dumps writes NaN/Infinity literals
    response = server.client.post("/recommend", content=content,
                                  headers={"Content-Type": "application/json"})
    _assert_clean(response, content.decode())
    assert 400 <= response.status_code < 500, response.text


def test_body_limits_name_the_limit(server: Server) -> None:
    # a declared length far over the limit is refused before a byte of the body is read
    status, body = _raw_request(server, b"POST /predict HTTP/1.1\r\nHost: x\r\n"
                                b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
                                b"Content-Type: application/json\r\n"
                                b"Content-Length: 1000000000000\r\n\r\n{}")
    assert status == 413 and "limit" in json.loads(body)["error"]

    def chunks() -> Iterator[bytes]:
        yield b'{"user_ids": ["'
        for _ in range(64):
            yield b"y" * 8192
        yield b'"]}'

    streamed = server.client.post("/predict", content=chunks(),
                                  headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413 and "limit" in streamed.json()["error"]
    many = server.client.post("/predict",
                              json={"user_ids": [str(i) for i in range(MAX_BATCH + 1)]})
    assert many.status_code == 413 and f"serving.max_batch={MAX_BATCH}" in many.json()["error"]


def _raw_request(server: Server, request: bytes) -> tuple[int, bytes]:
    """Send bytes no HTTP client would, read one response: ``(status, body)``."""
    import socket

    with socket.create_connection((server.service.host, server.service.port), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(body) < length:
            body += sock.recv(65536)
    return int(head.split(b" ", 2)[1]), body


def test_hostile_headers_and_methods(server: Server) -> None:
    url = server.service.url
    with httpx.Client(base_url=url, timeout=30) as anonymous:
        for token in ("", "Bearer", "Bearer " + "x" * 10_000, "Basic Zm9vOmJhcg==",
                      f"bearer {TOKEN}", f"Bearer  {TOKEN}"):
            response = anonymous.post("/predict", json={"user_ids": ["1"]},
                                      headers={"Authorization": token})
            assert response.status_code == 401, (token[:20], response.text)
        assert anonymous.get("/healthz").status_code == 200
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        response = server.client.request(method, "/predict")
        _assert_clean(response, method)
        assert response.status_code in {404, 405}, (method, response.status_code)
    response = server.client.get("/" + "a" * 10_000)
    _assert_clean(response, "long path")
    assert server.client.get("/healthz").status_code == 200
