"""``shopflow airflow up`` (``make airflow``): one command to a logged-in UI, Ctrl-C stops all.

A real ``shopflow airflow up`` on SQLite metadata in a fresh SHOPFLOW_HOME: the banner
names the UI address and a generated password, that password gets a token and the four
DAGs are listed, the Shopflow view answers in the api-server, and after SIGINT (Ctrl-C)
no process it started is left running.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import httpx
import psutil
import pytest

from shopflow.serving.process import free_port

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.slow]

START_TIMEOUT = 420.0
BANNER = re.compile(r"Airflow UI\s+(?P<url>http://\S+).*?\n\s+login\s+(?P<user>\S+) / "
                    r"(?P<password>\S+)", re.S)


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _started_by(up: subprocess.Popen[bytes], seen: dict[int, psutil.Process]) -> None:
    """Remember every process ``up`` started (children start their own sessions)."""
    for proc in _descendants(up.pid):
        seen.setdefault(proc.pid, proc)


def test_airflow_up_prints_a_login_that_works_and_ctrl_c_stops_everything(
        tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SHOPFLOW_"))}
    env.update({"SHOPFLOW_HOME": str(tmp_path / "home"),
                "SHOPFLOW_SERVING__PORT": str(free_port()),
                "SHOPFLOW_AIRFLOW__PORT": str(free_port())})
    out = tmp_path / "up.out"
    seen: dict[int, psutil.Process] = {}
    with out.open("wb") as sink:
        up = subprocess.Popen([sys.executable, "-m", "shopflow.cli", "airflow", "up"],
                              env=env, stdout=sink, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        match = None
        while match is None:
            assert up.poll() is None, f"airflow up exited {up.returncode}:\n{out.read_text()}"
            assert time.monotonic() < deadline, f"no banner in time:\n{out.read_text()}"
            _started_by(up, seen)
            match = BANNER.search(out.read_text())
            time.sleep(1.0)
        _started_by(up, seen)
        url, user, password = match["url"], match["user"], match["password"]
        assert password not in {"admin", "airflow", ""} and len(password) >= 16
        token = httpx.post(f"{url}/auth/token", json={"username": user, "password": password},
                           timeout=15)
        assert token.status_code in (200, 201), token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        assert httpx.post(f"{url}/auth/token", json={"username": user, "password": "admin"},
                          timeout=15).status_code in (401, 403)
        assert {"api-server", "scheduler", "dag-processor", "triggerer"} <= _names(seen)
        response = httpx.get(f"{url}/api/v2/monitor/health", headers=headers, timeout=15)
        assert response.json()["scheduler"]["status"] in {"healthy", None}, response.text
        view = httpx.get(f"{url}/shopflow/models", headers=headers, timeout=30)  # the plugin
        assert view.status_code == 200 and "No propensity model in production yet" in view.text
        up.send_signal(signal.SIGINT)
        up.wait(timeout=120)
        assert "nothing is left running" in out.read_text()
    finally:
        if up.poll() is None:  # the test failed first: let up stop its children, bounded
            up.send_signal(signal.SIGTERM)
            try:
                up.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(up.pid, signal.SIGKILL)
                up.wait(timeout=10)
        alive = [p for p in seen.values() if _alive(p)]
        for proc in alive:  # never leave them behind, even when the test failed
            proc.kill()
    assert not alive, [" ".join(p.cmdline()) for p in alive if _alive(p)]


def _names(seen: dict[int, psutil.Process]) -> set[str]:
    names = set()
    for proc in seen.values():
        try:
            cmdline = proc.cmdline()
        except psutil.Error:
            continue
        text = " ".join(cmdline).replace("api_server", "api-server")  # its process title
        for part in ("api-server", "scheduler", "dag-processor", "triggerer"):
            if part in text:
                names.add(part)
    return names


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
