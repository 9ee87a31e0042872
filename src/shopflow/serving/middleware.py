"""The service's front door: bearer auth, size limit, clean errors, access log, metrics.

A plain ASGI middleware (no ``BaseHTTPMiddleware``: that one costs a task and a queue per
request) added to the BentoML service with ``add_asgi_middleware``. It

* answers 401 without ``Authorization: Bearer <serving.auth_token>`` when a token is set
  (the probes ``/healthz``, ``/livez`` and ``/readyz`` stay open for orchestrators);
* answers 415 to a POST body that is not JSON (BentoML would hand form types to a
  multipart parser that fails with a 500);
* answers 413 when the body is larger than the limit (by ``Content-Length`` up front, or
  while a chunked body streams in), before anything parses it;
* reshapes BentoML's input-validation answer (400 with pydantic's ``detail`` list and a
  message that names the model class, not the field) into 422 with a message naming the
  field, and makes sure no other error carries a stack trace;
* writes one JSON access-log line per request, with user ids as keyed hashes only;
* notes a probe (the ``X-Shopflow-Probe`` header of the deploy gate's requests) in the
  request's record, for the prediction log's ``source``;
* times every request into :class:`~shopflow.serving.metrics.RequestMetrics` and answers
  ``GET /metrics`` (Prometheus text: its own request families plus what the service's
  ``collect`` callable adds), when ``serving.metrics`` is on.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from shopflow.contract import PROBE_HEADER
from shopflow.serving.metrics import CONTENT_TYPE, RequestMetrics, render

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_logger = logging.getLogger("shopflow.serving.access")
logger = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz"})
METRICS_PATH = "/metrics"
STATE_KEY = "shopflow_access"
_PROBE = PROBE_HEADER.lower().encode()
_MAX_ERROR_BODY = 64 * 1024


def max_body_bytes(max_batch: int) -> int:
    """Largest accepted request body: room for ``max_batch`` ids of up to 128 characters."""
    return 4096 + max_batch * 140


def is_json_media_type(content_type: bytes | None) -> bool:
    """Whether a POST body of this ``Content-Type`` is read as JSON (absent: BentoML's default).

    BentoML picks its parser by the header: form types go to a multipart parser that
    answers a malformed body with a 500, and the API has no file or form input anyway;
    so anything but JSON is turned away with a 415 before BentoML sees it.
    """
    if not content_type:
        return True
    media_type = content_type.split(b";", 1)[0].strip().lower()
    return media_type == b"application/json" or (
        media_type.startswith(b"application/") and media_type.endswith(b"+json"))


def _json_error(status: int, message: str, extra_headers: list[tuple[bytes, bytes]] | None = None
                ) -> tuple[dict[str, Any], bytes]:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return (
        {"type": "http.response.start", "status": status, "headers": headers + (extra_headers or [])},
        body,
    )


def describe_validation_error(detail: list[dict[str, Any]]) -> str:
    """One message naming each bad field (``user_ids[2]: Input should be ...``)."""
    parts = []
    for item in detail[:5]:
        loc = [p for p in item.get("loc", []) if p not in ("body",)]
        # pydantic adds the union branch ("str", "int", "constrained-str") to the location
        loc = [p for p in loc if not (isinstance(p, str)
                                      and p in {"str", "int", "constrained-str", "constrained-int"})]
        name = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p))
                       for i, p in enumerate(loc)) or "body"
        message = item.get("msg", "invalid value")
        if item.get("type") == "too_short" and loc == ["user_ids"]:
            message = "must hold at least one user id"
        parts.append(f"{name}: {message}")
    more = f" (and {len(detail) - 5} more)" if len(detail) > 5 else ""
    return "invalid request: " + "; ".join(parts) + more


class FrontDoorMiddleware:
    """ASGI middleware: auth, body limit, error shaping and the access log (see module doc).

    Args:
        app: the inner ASGI app.
        auth_token: required bearer token; None disables auth.
        max_body: largest accepted request body in bytes.
        metrics: where requests are timed; None: no timing and no ``/metrics``.
        collect: more metric lines for ``/metrics`` (the service's models and logs),
            called on each scrape.
        from_settings: take the token, limit and metrics switch from
            ``load_settings().serving`` instead.
    """

    def __init__(self, app: ASGIApp, *, auth_token: str | None = None,
                 max_body: int | None = None, metrics: RequestMetrics | None = None,
                 collect: Callable[[], Iterable[Iterable[str]]] | None = None,
                 from_settings: bool = False) -> None:
        if from_settings:  # read when the server builds its app, never at import time
            from shopflow.serving.options import ROUTES
            from shopflow.settings import load_settings

            serving = load_settings().serving
            auth_token = serving.auth_token
            max_body = max_body_bytes(serving.max_batch)
            metrics = RequestMetrics([*ROUTES, METRICS_PATH]) if serving.metrics else None
        self.app = app
        self.auth = f"Bearer {auth_token}".encode() if auth_token else None
        self.max_body = max_body if max_body is not None else 1 << 20
        self.metrics = metrics
        self.collect = collect

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path: str = scope.get("path", "")
        headers = dict(scope.get("headers") or ())
        record: dict[str, Any] = {"status": 500}
        probe = headers.get(_PROBE)
        if probe is not None:  # the deploy gate's request: the prediction log marks it
            record["probe"] = probe.decode("latin-1")
        scope.setdefault("state", {})[STATE_KEY] = record
        try:
            if self.auth is not None and path not in OPEN_PATHS:
                given = headers.get(b"authorization", b"")
                if not hmac.compare_digest(given, self.auth):
                    await self._reply(send, record, 401, "missing or wrong bearer token "
                                      "(send 'Authorization: Bearer <serving.auth_token>')",
                                      [(b"www-authenticate", b"Bearer")])
                    return
            if scope.get("method") == "POST" and not is_json_media_type(
                    headers.get(b"content-type")):
                await self._reply(send, record, 415, "unsupported Content-Type: send the "
                                  "body as JSON with 'Content-Type: application/json'")
                return
            length = headers.get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body:
                await self._reply(send, record, 413, f"request body of {int(length)} bytes is "
                                  f"over the limit of {self.max_body} bytes")
                return
            if path == METRICS_PATH and self.metrics is not None:
                await self._scrape(scope, send, record)
                return
            await self.app(scope, self._limited(receive, record), self._shaping(send, record))
        except _BodyTooLarge:
            if not record.get("started"):
                await self._reply(send, record, 413, f"request body is over the limit of "
                                  f"{self.max_body} bytes")
        finally:
            elapsed = time.perf_counter() - started
            if self.metrics is not None:
                self.metrics.observe(path, record["status"], elapsed)
            self._log(scope, path, record, elapsed)

    async def _scrape(self, scope: Scope, send: Send, record: dict[str, Any]) -> None:
        """``GET /metrics``: rendered on the event loop, like every update (no locks)."""
        assert self.metrics is not None
        if scope.get("method") not in ("GET", "HEAD"):
            await self._reply(send, record, 405, "GET /metrics only", [(b"allow", b"GET")])
            return
        body = render([self.metrics.lines(), *(self.collect() if self.collect else ())])
        record["status"] = 200
        record["started"] = True
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", CONTENT_TYPE.encode()),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body",
                    "body": b"" if scope.get("method") == "HEAD" else body})

    async def _reply(self, send: Send, record: dict[str, Any], status: int, message: str,
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
        start, body = _json_error(status, message, headers)
        record["status"] = status
        record["started"] = True
        await send(start)
        await send({"type": "http.response.body", "body": body})

    def _limited(self, receive: Receive, record: dict[str, Any]) -> Receive:
        received = 0
        limit = self.max_body

        async def wrapped() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    record["too_large"] = True
                    raise _BodyTooLarge
            return message

        return wrapped

    def _shaping(self, send: Send, record: dict[str, Any]) -> Send:
        held: dict[str, Any] = {}

        async def wrapped(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
                record["status"] = status
                record["started"] = True
                if status >= 400:
                    held["start"] = message
                    held["body"] = b""
                    return
                await send(message)
                return
            if kind == "http.response.body" and "start" in held:
                held["body"] += message.get("body", b"")
                if message.get("more_body", False) and len(held["body"]) < _MAX_ERROR_BODY:
                    return
                await self._send_shaped(send, record, held)
                held.clear()
                held["done"] = True
                return
            if "done" in held:
                return
            await send(message)

        return wrapped

    async def _send_shaped(self, send: Send, record: dict[str, Any], held: dict[str, Any]) -> None:
        status: int = held["start"]["status"]
        raw: bytes = held["body"]
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = None
        if isinstance(payload, list) and len(payload) == 1 and isinstance(payload[0], dict):
            payload = payload[0]  # BentoML wraps some 4xx errors in a one-element list
        if record.get("too_large"):
            status, message = 413, f"request body is over the limit of {self.max_body} bytes"
        elif status == 400 and isinstance(payload, dict) and isinstance(payload.get("detail"), list):
            status, message = 422, describe_validation_error(payload["detail"])
        elif isinstance(payload, dict) and isinstance(payload.get("error"), str):
            message = payload["error"]
        elif status >= 500:
            message = "internal error; see the server log"
        else:
            message = raw.decode("utf-8", "replace")[:500].strip() or f"HTTP {status}"
        if status >= 500 and "Traceback" in message:
            message = "internal error; see the server log"
        extra = [(k, v) for k, v in held["start"].get("headers", [])
                 if k.lower() in (b"www-authenticate", b"allow", b"retry-after")]
        start, body = _json_error(status, message, extra)
        record["status"] = status
        await send(start)
        await send({"type": "http.response.body", "body": body})

    def _log(self, scope: Scope, path: str, record: dict[str, Any], elapsed: float) -> None:
        if path in OPEN_PATHS and record.get("status") == 200:
            return  # probes poll every few seconds: log them only when they fail
        if not access_logger.isEnabledFor(logging.INFO):
            return
        line = {
            "method": scope.get("method"),
            "path": path,
            "status": record.get("status"),
            "ms": round(elapsed * 1000, 3),
        }
        for key in ("request_id", "users", "n_users", "unknown", "model_version", "probe"):
            if key in record:
                line[key] = record[key]
        access_logger.info(json.dumps(line, separators=(",", ":")))


class _BodyTooLarge(Exception):
    """Raised inside ``receive`` when a streamed body passes the limit."""
