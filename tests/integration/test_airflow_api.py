"""A real ``airflow api-server`` on loopback serves our DAGs and accepts a triggered run.

The server uses Airflow's simple auth manager with a test user whose password file the
test writes, the DAGs are serialized into a SQLite metadata DB with ``airflow dags
reserialize`` (what the dag-processor does in production), and the REST API v2 is called
with a JWT from ``/auth/token``. The start-up wait is bounded and the server is always
terminated.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
USER, PASSWORD = "shopflow-tester", secrets.token_urlsafe(12)
START_TIMEOUT = 150.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _airflow_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SHOPFLOW_"))}
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD}))
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "SHOPFLOW_HOME": str(home / "shopflow"),
    })
    return env


def _run(args: list[str], env: dict[str, str], timeout: float) -> None:
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    home = tmp_path_factory.mktemp("airflow_api")
    env = _airflow_env(home)
    _run([AIRFLOW, "db", "migrate"], env, timeout=240)
    _run([AIRFLOW, "dags", "reserialize"], env, timeout=240)
    port = _free_port()
    log = (home / "api-server.log").open("wb")
    server = subprocess.Popen(
        [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if server.poll() is not None:
                pytest.fail(f"api-server exited with {server.returncode}:\n"
                            f"{(home / 'api-server.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/api/v2/monitor/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"api-server not healthy after {START_TIMEOUT:.0f}s:\n"
                            f"{(home / 'api-server.log').read_text()[-3000:]}")
            time.sleep(1.0)
        token = httpx.post(f"{base}/auth/token", json={"username": USER, "password": PASSWORD},
                           timeout=10)
        assert token.status_code in (200, 201), token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            yield client
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(server.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            server.wait(timeout=10)
        log.close()


def test_api_requires_a_token(api: httpx.Client) -> None:
    response = httpx.get(str(api.base_url.join("/api/v2/dags")), timeout=10)
    assert response.status_code in (401, 403)


def test_api_lists_the_shopflow_dags(api: httpx.Client) -> None:
    response = api.get("/api/v2/dags", params={"tags": "shopflow"})
    assert response.status_code == 200, response.text
    ids = {dag["dag_id"] for dag in response.json()["dags"]}
    assert ids == {"shopflow_training", "shopflow_features", "shopflow_monitoring",
                   "shopflow_rollback"}
    errors = api.get("/api/v2/importErrors").json()
    assert errors["total_entries"] == 0, errors


def test_manual_trigger_with_params_is_accepted(api: httpx.Client) -> None:
    conf = {"families": ["xgboost", "baseline"], "horizon": "14d", "min_improvement": 0.01,
            "force_promote": True, "force_reason": "api test"}
    response = api.post("/api/v2/dags/shopflow_training/dagRuns",
                        json={"logical_date": None, "conf": conf, "note": "from the test"})
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["dag_id"] == "shopflow_training"
    assert run["state"] == "queued"
    assert run["conf"]["families"] == ["xgboost", "baseline"]
    fetched = api.get(f"/api/v2/dags/shopflow_training/dagRuns/{run['dag_run_id']}")
    assert fetched.status_code == 200 and fetched.json()["conf"]["force_reason"] == "api test"


def test_trigger_with_invalid_params_is_refused(api: httpx.Client) -> None:
    response = api.post("/api/v2/dags/shopflow_training/dagRuns",
                        json={"logical_date": None, "conf": {"families": ["catboost"]}})
    assert response.status_code == 400, response.text
    assert "families" in response.text


def test_rollback_dag_requires_a_reason(api: httpx.Client) -> None:
    refused = api.post("/api/v2/dags/shopflow_rollback/dagRuns",
                       json={"logical_date": None, "conf": {}})
    assert refused.status_code == 400, refused.text
    accepted = api.post("/api/v2/dags/shopflow_rollback/dagRuns",
                        json={"logical_date": None, "conf": {"reason": "canary errors"}})
    assert accepted.status_code == 200, accepted.text
