"""A Bento that carries the winner answers as the hot-swap service does.

The sandbox (a tiny baseline model and a recommender, both promoted, features in the real
Feast online store) is served first by the hot-swap service (``bentoml serve`` of the
repository's ``services/``, following the ledger). Then ``shopflow package`` builds a
Bento; it is exported and imported into a fresh BentoML home, the model store of
SHOPFLOW_HOME is moved away, and ``bentoml serve <tag>`` runs from an empty working folder
on a free port with no PYTHONPATH: the Bento's own copy of the package and its own
models must answer, and they must answer exactly what the hot-swap service answered.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from shopflow.ledger import Ledger
from shopflow.serving.process import ServiceProcess
from shopflow.serving.sandbox import build_recommender_sandbox, build_sandbox
from shopflow.settings import Settings, load_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _answers(url: str, ids: list[Any], rec_users: list[str]) -> dict[str, Any]:
    """/predict for ``ids`` and /recommend for each of ``rec_users``, once a model serves."""
    with httpx.Client(base_url=url, timeout=10) as client:
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, client.get("/metadata").text
            time.sleep(0.2)
        predict = client.post("/predict", json={"user_ids": ids})
        assert predict.status_code == 200, predict.text
        recommend = [client.post("/recommend", json={"user_id": u, "k": 5}) for u in rec_users]
        assert all(r.status_code == 200 for r in recommend), [r.text for r in recommend]
        return {"predict": predict.json(), "recommend": [r.json() for r in recommend],
                "metadata": client.get("/metadata").json()}


def _bentoml(home: Path, *args: str) -> None:
    program = Path(sys.executable).with_name("bentoml")
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True"}
    done = subprocess.run([str(program), *args], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_bento_serves_the_hot_swap_answers_without_the_model_store(
        tmp_path: Path, shopflow_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings: Settings = load_settings()
    monkeypatch.setenv("BENTOML_HOME", str(settings.bentoml_home))  # restored after the test
    sandbox = build_sandbox(settings, users=40, models=1)
    version = sandbox.versions[-1]
    recommender = build_recommender_sandbox(settings, sandbox.user_ids[:20]).versions[-1]
    ids: list[Any] = [*sandbox.user_ids[:25], "no-such-user", int(sandbox.user_ids[0])]
    rec_users = [sandbox.user_ids[0], "no-such-user"]

    with ServiceProcess(settings, inherit_shopflow_env=False) as hot:
        expected = _answers(hot.url, ids, rec_users)
    assert expected["predict"]["model_version"] == version
    assert expected["metadata"]["packaged"] is None  # the hot-swap service follows the ledger

    from shopflow.cli import cli

    result = CliRunner().invoke(cli, ["package", "--json"])
    assert result.exit_code == 0, result.output
    import json

    packaged = json.loads(result.output)
    tag = packaged["bento"]
    assert (packaged["version"], packaged["recommender_version"]) == (version, recommender)
    with Ledger(settings.ledger_url) as ledger:
        assert ledger.status()["production"]["bento"] == tag
        assert ledger.candidate(recommender).bento == tag  # type: ignore[union-attr]
    status = CliRunner().invoke(cli, ["status"])
    assert f"bento:    {tag}" in status.output

    # the Bento alone: a fresh BentoML home, and no model store in SHOPFLOW_HOME
    archive, fresh = tmp_path / "shop.bento", tmp_path / "fresh_bentoml"
    _bentoml(settings.bentoml_home, "export", tag, str(archive))
    _bentoml(fresh, "import", str(archive))
    store = settings.bentoml_home / "models"
    store.rename(store.with_name("models.away"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with ServiceProcess(settings, inherit_shopflow_env=False, target=tag, working_dir=empty,
                        cwd=empty, env={"BENTOML_HOME": str(fresh), "PYTHONPATH": ""}) as bento:
        got = _answers(bento.url, ids, rec_users)
    assert list(empty.iterdir()) == []
    assert got["metadata"]["packaged"]["propensity"] == f"shopflow-propensity:{version}"
    assert got["metadata"]["packaged"]["recommender"] == f"shopflow-recommender:{recommender}"
    assert got["metadata"]["swaps"] == 1 and got["metadata"]["refused"] == []
    assert got["predict"] == expected["predict"]
    assert [p["known_user"] for p in got["predict"]["predictions"]].count(False) == 1
    assert got["recommend"] == expected["recommend"]
    assert got["metadata"]["model"]["inference"] == expected["metadata"]["model"]["inference"]


def test_package_without_production_names_the_fix(settings: Settings) -> None:
    from shopflow.cli import cli

    result = CliRunner().invoke(cli, ["package"])
    assert result.exit_code == 1
    assert "no production model" in result.output and "--version" in result.output
