"""POST bodies are JSON: the front door turns other media types away with a 415.

BentoML picks its body parser by ``Content-Type``; form types go to a multipart parser
that answers a malformed body with a 500 (found by tests/integration/test_serving_hostile).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from shopflow.serving.middleware import FrontDoorMiddleware, is_json_media_type

if TYPE_CHECKING:
    from starlette.requests import Request


async def _echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/json")


@pytest.mark.parametrize(("content_type", "json"), [
    (None, True), (b"application/json", True), (b"Application/JSON; charset=utf-8", True),
    (b"application/problem+json", True), (b"text/plain", False),
    (b"multipart/form-data; boundary=x", False), (b"application/x-www-form-urlencoded", False),
    (b"application/vnd.bentoml+pickle", False), (b"text/json+", False), (b"", True),
])
def test_json_media_types(content_type: bytes | None, json: bool) -> None:
    assert is_json_media_type(content_type) is json


def test_a_form_body_is_a_415_naming_the_type_to_send() -> None:
    app = Starlette(routes=[Route("/predict", _echo, methods=["POST"])])
    client = TestClient(FrontDoorMiddleware(app, max_body=1000))
    refused = client.post("/predict", content=b'{"user_ids": ["1"]}',
                          headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert refused.status_code == 415
    assert "application/json" in refused.json()["error"]
    accepted = client.post("/predict", content=b'{"user_ids": ["1"]}',
                           headers={"Content-Type": "application/json"})
    assert accepted.status_code == 200 and accepted.json() == {"user_ids": ["1"]}
