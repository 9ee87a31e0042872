"""A small HTTP client for the running service (gate 3, tests, the benchmark's checks).

Plain httpx rather than ``bentoml.SyncHTTPClient``: gate 3 must see every answer as the
outside world does (status, timing, error body), including the ones BentoML's client
would turn into exceptions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    import httpx

    from shopflow.settings import Settings


def service_url(settings: Settings) -> str:
    """Where ``shopflow serve`` listens with these settings."""
    return f"http://{settings.serving.host}:{settings.serving.port}"


@dataclass(frozen=True)
class Answer:
    """One ``/predict`` round trip as the caller saw it."""

    status: int
    seconds: float
    body: dict[str, Any] | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None


class ServiceClient:
    """Talks to the Shopflow service at ``url`` (bearer token when one is set)."""

    def __init__(self, url: str, *, auth_token: str | None = None, timeout: float = 10.0,
                 probe: str | None = None) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {auth_token}"} if auth_token else {}
        if probe is not None:  # the service logs these answers as probes, not live traffic
            from shopflow.contract import PROBE_HEADER

            headers[PROBE_HEADER] = probe
        self.url = url.rstrip("/")
        self._auth_token = auth_token
        self._timeout = timeout
        self._probe = probe
        self._client: httpx.Client = httpx.Client(base_url=self.url, headers=headers,
                                                  timeout=timeout)

    @classmethod
    def for_settings(cls, settings: Settings, *, url: str | None = None,
                     probe: str | None = None) -> ServiceClient:
        """A client for the service these settings run; ``probe`` names the checker when
        its requests are probes (sent in the ``X-Shopflow-Probe`` header)."""
        return cls(url or service_url(settings), auth_token=settings.serving.auth_token,
                   probe=probe)

    def clone(self) -> ServiceClient:
        """A client with its own connections to the same service (one per thread)."""
        return ServiceClient(self.url, auth_token=self._auth_token, timeout=self._timeout,
                             probe=self._probe)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def metadata(self) -> dict[str, Any]:
        """``GET /metadata`` (raises on transport errors and non-200 answers)."""
        response = self._client.get("/metadata")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def predict(self, user_ids: Sequence[str | int]) -> Answer:
        """``POST /predict``; never raises: transport errors become an Answer with status 0."""
        import httpx

        started = time.perf_counter()
        try:
            response = self._client.post("/predict", json={"user_ids": list(user_ids)})
        except httpx.HTTPError as exc:
            return Answer(0, time.perf_counter() - started, None, f"{type(exc).__name__}: {exc}")
        seconds = time.perf_counter() - started
        try:
            body = response.json()
        except ValueError:
            body = None
        error = None if response.status_code == 200 else str((body or {}).get("error", response.text[:200]))
        return Answer(response.status_code, seconds, body, error)
