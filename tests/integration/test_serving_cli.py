"""``shopflow serve`` for real, on an empty SHOPFLOW_HOME: alive, not ready, 503 with a reason."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import httpx
import pytest

from shopflow.serving.process import free_port

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_shopflow_serve_without_a_model_answers_503(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPFLOW_")}
    env["SHOPFLOW_HOME"] = str(tmp_path / "home")
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "shopflow.cli", "serve", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail(f"shopflow serve did not come up: {log.read_text()[-3000:]}")
        ready = httpx.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 503
        predict = httpx.post(f"{url}/predict", json={"user_ids": ["17850"]}, timeout=10)
        assert predict.status_code == 503
        assert "no model in production" in predict.json()["error"]
        meta = httpx.get(f"{url}/metadata", timeout=10).json()
        assert meta["model_version"] is None and meta["production_alias"] is None
        assert "Traceback" not in predict.text
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
