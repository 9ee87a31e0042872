"""The model server with its model store read-only, as docker-compose.yml mounts it.

The compose deployment mounts the model store (``SHOPFLOW_HOME/bentoml/models``) read-only
in the public model server: a compromised server cannot plant a pickle the workers would
load. Here a real ``bentoml serve`` runs in its own mount namespace with that folder
bind-mounted read-only (root and ``unshare`` needed; skipped elsewhere): it starts, is
ready, answers, and hot-swaps to a model the pipeline (this process) stores afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from typing import TYPE_CHECKING

import httpx
import pytest

from shopflow.serving.process import ServiceProcess
from shopflow.serving.sandbox import (
    build_sandbox,
    publish_model,
    synthetic_user_features,
    train_tiny_model,
)
from shopflow.settings import load_settings

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BIND_READ_ONLY = 'mount --bind -o ro "$0" "$0" && exec "$@"'


def _read_only_mounts_work(folder: Path) -> bool:
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        return False
    probe = subprocess.run([unshare, "-m", "sh", "-c", BIND_READ_ONLY + " 2>/dev/null",
                            str(folder), "sh", "-c", f"! touch '{folder}/probe' 2>/dev/null"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0 and not (folder / "probe").exists()


def test_the_server_serves_and_swaps_from_a_read_only_model_store(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home", serving={"reload_interval": 0.5})
    sandbox = build_sandbox(settings, users=20, models=1)
    models = settings.bentoml_home / "models"
    if not _read_only_mounts_work(models):
        pytest.skip("needs root and unshare to mount the model store read-only")
    service = ServiceProcess(settings, inherit_shopflow_env=False,
                             env={"SHOPFLOW_SERVING__RELOAD_INTERVAL": "0.5"})
    service.command = ["unshare", "-m", "sh", "-c", BIND_READ_ONLY, str(models),
                       *service.command]
    service.start(wait=180)
    try:
        with httpx.Client(base_url=service.url, timeout=30) as client:
            assert client.get("/readyz").status_code == 200
            answer = client.post("/predict", json={"user_ids": sandbox.user_ids[:2]})
            assert answer.status_code == 200, answer.text
            assert answer.json()["model_version"] == sandbox.versions[-1]
            # the pipeline stores and promotes another model: the server reads it
            frame = synthetic_user_features(20, seed=0)
            model, base_rate = train_tiny_model(frame, seed=5, c=0.3)
            version = publish_model(settings, model, base_rate=base_rate, reason="second")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if client.get("/metadata").json()["model_version"] == version:
                    break
                time.sleep(0.2)
            assert client.get("/metadata").json()["model_version"] == version
            assert client.post("/predict", json={"user_ids": ["1"]}).status_code == 200
    finally:
        service.stop()
    assert "Read-only file system" not in service.log_tail(400)
