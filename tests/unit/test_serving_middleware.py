"""The front-door middleware on a real Starlette app (auth, size limit, errors, access log)."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from shopflow.serving.middleware import (
    STATE_KEY,
    FrontDoorMiddleware,
    describe_validation_error,
    max_body_bytes,
)

if TYPE_CHECKING:
    import pytest
    from starlette.requests import Request

TOKEN = "s3cret"


async def _predict(request: Request) -> Response:
    body = await request.body()
    record = request.scope["state"][STATE_KEY]
    record.update(n_users=1, users=["abcd"], model_version="v1")
    return Response(body, media_type="application/json")


async def _validation(request: Request) -> Response:
    # the shape BentoML answers a pydantic ValidationError with
    return JSONResponse({"error": "1 validation error for PredictRequest", "detail": [
        {"type": "string_type", "loc": ["user_ids", 1, "str"], "msg": "Input should be a valid string"},
    ]}, status_code=400)


async def _crash(request: Request) -> Response:
    return PlainTextResponse("Traceback (most recent call last):\n  secrets", status_code=500)


async def _healthz(request: Request) -> Response:
    return PlainTextResponse("\n")


def _client(token: str | None = TOKEN, max_body: int = 200) -> TestClient:
    app = Starlette(routes=[
        Route("/predict", _predict, methods=["POST"]),
        Route("/validation", _validation, methods=["POST"]),
        Route("/crash", _crash),
        Route("/healthz", _healthz),
    ])
    return TestClient(FrontDoorMiddleware(app, auth_token=token, max_body=max_body))


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def test_token_required_except_on_probes() -> None:
    client = _client()
    assert client.get("/healthz").status_code == 200
    refused = client.post("/predict", content=b"{}")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert client.post("/predict", content=b"{}", headers={"Authorization": "Bearer no"}).status_code == 401
    assert client.post("/predict", content=b"{}", headers=_auth()).status_code == 200


def test_no_token_configured_means_open() -> None:
    assert _client(token=None).post("/predict", content=b"{}").status_code == 200


def test_body_over_limit_is_413_by_length_and_by_stream() -> None:
    client = _client(max_body=100)
    big = b"x" * 101
    response = client.post("/predict", content=big, headers=_auth())
    assert response.status_code == 413
    assert "100 bytes" in response.json()["error"]

    def chunks():  # no Content-Length: the limit is enforced while the body streams in
        for _ in range(5):
            yield b"y" * 40

    response = client.post("/predict", content=chunks(), headers=_auth())
    assert response.status_code == 413
    assert client.post("/predict", content=b"x" * 100, headers=_auth()).status_code == 200


def test_validation_errors_become_422_naming_the_field() -> None:
    response = _client().post("/validation", headers=_auth())
    assert response.status_code == 422
    assert response.json() == {"error": "invalid request: user_ids[1]: Input should be a valid string"}


def test_server_errors_never_leak_tracebacks() -> None:
    response = _client().get("/crash", headers=_auth())
    assert response.status_code == 500
    assert "Traceback" not in response.text
    assert response.json()["error"]


def test_access_log_has_hashed_users_and_no_probe_noise(caplog: pytest.LogCaptureFixture) -> None:
    client = _client()
    with caplog.at_level(logging.INFO, logger="shopflow.serving.access"):
        client.get("/healthz")
        client.post("/predict", content=b'{"user_ids": ["17850"]}', headers=_auth())
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "shopflow.serving.access"]
    assert len(lines) == 1
    line = lines[0]
    assert line["path"] == "/predict" and line["status"] == 200
    assert line["users"] == ["abcd"] and line["model_version"] == "v1"
    assert "17850" not in caplog.text


def test_describe_validation_error_cases() -> None:
    assert describe_validation_error([{"type": "too_short", "loc": ["user_ids"], "msg": "x"}]) == (
        "invalid request: user_ids: must hold at least one user id")
    assert describe_validation_error([{"type": "missing", "loc": ["user_ids"], "msg": "Field required"}]) == (
        "invalid request: user_ids: Field required")
    many = [{"loc": ["user_ids", i], "msg": "bad"} for i in range(7)]
    assert describe_validation_error(many).endswith("(and 2 more)")


def test_body_limit_scales_with_max_batch() -> None:
    assert max_body_bytes(1000) > 1000 * 128
    assert max_body_bytes(10) < max_body_bytes(1000)
