"""Start and stop ``bentoml serve`` for the Shopflow service as a child process.

Used by ``shopflow serve`` (in the foreground), by the tests and the benchmark (in the
background, on a free loopback port). The child gets the caller's settings through the
environment (``SHOPFLOW_HOME``, ``SHOPFLOW_CONFIG``, ``BENTOML_HOME``), so it reads the
same ledger, model store and Feast repo.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

#: ``bentoml serve`` target: module (in :func:`services_dir`) and class of the service.
SERVICE_MODULE = "shop_service"
SERVICE_TARGET = f"{SERVICE_MODULE}:ShopService"


class ServiceStartError(RuntimeError):
    """The service process exited or did not answer before the deadline."""


def services_dir() -> Path:
    """The folder with ``shop_service.py`` and ``bentofile.yaml``.

    ``SHOPFLOW_SERVICES_DIR`` overrides it (an installed, non-editable package has no
    repository next to it).
    """
    override = os.environ.get("SHOPFLOW_SERVICES_DIR")
    if override:
        return Path(override).resolve()
    import shopflow

    return Path(shopflow.__file__).resolve().parents[2] / "services"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def service_env(settings: Settings, *, config_path: str | Path | None = None,
                extra: dict[str, str] | None = None,
                inherit_shopflow_env: bool = True) -> dict[str, str]:
    """The child's environment: the caller's, plus where Shopflow and BentoML state live.

    Args:
        inherit_shopflow_env: keep the caller's other ``SHOPFLOW_*`` variables (the CLI:
            they shaped the caller's settings too); tests pass False so that only the
            home and the config file decide the child's settings.
    """
    env = {k: v for k, v in os.environ.items()
           if inherit_shopflow_env or not k.startswith("SHOPFLOW_")}
    env["SHOPFLOW_HOME"] = str(settings.home_dir)
    env["BENTOML_HOME"] = str(settings.bentoml_home)
    env["BENTOML_DO_NOT_TRACK"] = "True"  # no usage analytics leave this machine
    if settings.database_url:
        env["SHOPFLOW_DATABASE_URL"] = settings.database_url
    if config_path is not None:
        env["SHOPFLOW_CONFIG"] = str(Path(config_path).resolve())
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    env.update(extra or {})
    return env


def address_env(host: str, port: int) -> dict[str, str]:
    """The service's own address as settings (it runs gate 3 on a pending candidate at
    start, against itself: :mod:`shopflow.serving.pending`)."""
    return {"SHOPFLOW_SERVING__HOST": host, "SHOPFLOW_SERVING__PORT": str(port)}


def serve_command(*, host: str, port: int, target: str = SERVICE_TARGET,
                  working_dir: Path | None = None) -> list[str]:
    """The ``bentoml serve`` command line for the service."""
    bentoml = Path(sys.executable).with_name("bentoml")
    program = [str(bentoml)] if bentoml.exists() else [sys.executable, "-m", "bentoml"]
    return [*program, "serve", target, "--host", host, "--port", str(port),
            "--working-dir", str(working_dir or services_dir())]


class ServiceProcess:
    """A running ``bentoml serve`` child; use as a context manager so it always stops.

    Args:
        settings: whose state the service serves.
        port: TCP port; None picks a free one.
        host: bind address (default ``settings.serving.host``, loopback).
        config_path: YAML config handed to the child.
        env: extra environment variables for the child.
        log_path: file for the child's stdout/stderr (default: under reports_dir).
        target: ``module:Class`` of the service (the benchmark serves others).
        working_dir: folder holding the service module.
        inherit_shopflow_env: pass the caller's ``SHOPFLOW_*`` variables on.
        cwd: the child's working directory (default: the caller's).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        port: int | None = None,
        host: str | None = None,
        config_path: str | Path | None = None,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        target: str = SERVICE_TARGET,
        working_dir: Path | None = None,
        inherit_shopflow_env: bool = True,
        cwd: Path | None = None,
    ) -> None:
        self.settings = settings
        self.cwd = cwd
        self.host = host or settings.serving.host
        self.port = port or free_port(self.host)
        self.env = service_env(settings, config_path=config_path,
                               extra={**address_env(self.host, self.port), **(env or {})},
                               inherit_shopflow_env=inherit_shopflow_env)
        self.log_path = log_path or settings.reports_dir / "serving" / f"service-{self.port}.log"
        self.command = serve_command(host=self.host, port=self.port, target=target,
                                     working_dir=working_dir)
        self.process: subprocess.Popen[bytes] | None = None
        self._log_handle: Any = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, *, wait: float = 120.0) -> ServiceProcess:
        """Start the child and wait until ``/healthz`` answers (bounded by ``wait`` s)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_handle = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        logger.info("starting %s (log: %s)", " ".join(self.command), self.log_path)
        self.process = subprocess.Popen(
            self.command, env=self.env, cwd=self.cwd, stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        try:
            self.wait_healthy(timeout=wait)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_healthy(self, *, timeout: float) -> None:
        """Poll ``/healthz`` until it answers 200, the child dies, or ``timeout`` passes."""
        import httpx

        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise ServiceStartError(
                        f"bentoml serve exited with code {self.process.returncode}; "
                        f"log tail:\n{self.log_tail()}"
                    )
                try:
                    if client.get(f"{self.url}/healthz").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.25)
        raise ServiceStartError(
            f"service at {self.url} did not answer /healthz within {timeout:.0f} s; "
            f"log tail:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the child's log, for error messages."""
        from shopflow.processes import log_tail

        return log_tail(self.log_path, lines)

    def stop(self, *, timeout: float = 20.0) -> None:
        """Stop the child and its workers (SIGTERM to its process group, then SIGKILL)."""
        process = self.process
        if process is not None and process.poll() is None:
            for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    process.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self.process = None
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def __enter__(self) -> ServiceProcess:
        if self.process is None:
            self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
