"""``shopflow pipeline run`` end to end through Airflow, on small synthetic data.

One SHOPFLOW_HOME for the module and a real ``shopflow serve`` (BentoML) on loopback: a
good run (forced promotion, so production is known) that hot-swaps the service and passes
gate 3, and trains the recommender beside it (``POST /recommend`` then answers from the
run's recommender, or from its published marts when the gate rejected it), then a run
whose source breaks the raw gate. Each run is a real ``shopflow``
process (Airflow reads its configuration at import, so runs never share a Python
process), with real dbt, GX, Feast, training, ledger and BentoML model store.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml

from shopflow.ledger import Ledger

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SMALL_RUN = {
    "generator": {"events": 30_000, "days": 70, "seed": 11},
    "task": {"horizon": "7d", "lookback": "28d", "cutoff_every": "7d"},
    "training": {"families": ["baseline", "xgboost"], "search_trials": 1, "search_seconds": 20},
}
UPSTREAM_OF_EVERYTHING = {"plan", "ingest", "gate_raw"}
# the blocked run names one ranker (the param path); the good run trains both (the default)
RECOMMEND_PARAMS = ("--param", "recommend_families=lightgbm")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(home: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOPFLOW_", "AIRFLOW"))}
    env.update({"SHOPFLOW_HOME": str(home), "SHOPFLOW_SERVING__PORT": str(port),
                "SHOPFLOW_SERVING__POST_DEPLOY_WINDOW": "1"})
    return env


def run_pipeline(home: Path, port: int, *args: str, timeout: int = 480
                 ) -> tuple[int, dict[str, Any], str]:
    """Run ``shopflow pipeline run --json``; returns exit code, summary and output."""
    env = _env(home, port)
    proc = subprocess.run(
        [sys.executable, "-m", "shopflow.cli", "pipeline", "run", "--json", *args],
        env=env, capture_output=True, text=True, timeout=timeout, cwd=home.parent,
    )
    start = proc.stdout.find("{\n")
    assert start >= 0, f"no JSON summary (rc {proc.returncode}):\n{proc.stdout[-4000:]}\n" \
                       f"{proc.stderr[-4000:]}"
    return proc.returncode, json.loads(proc.stdout[start:]), proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pipeline_e2e")
    config = root / "run.yaml"
    config.write_text(yaml.safe_dump(SMALL_RUN))
    return {"home": root / "home", "config": config, "root": root}


@pytest.fixture(scope="module")
def service(workspace: dict[str, Path]) -> Iterator[dict[str, Any]]:
    """``shopflow serve`` on a free loopback port, started before the first run.

    It starts with nothing in production (alive, not ready) and must pick up the model
    the run promotes: the deploy task waits for the hot swap and measures it (gate 3).
    """
    port = _free_port()
    workspace["home"].mkdir(parents=True, exist_ok=True)
    log_path = workspace["root"] / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "shopflow.cli", "serve", "--port", str(port)],
            env=_env(workspace["home"], port), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=workspace["root"],
        )
    try:
        url = f"http://127.0.0.1:{port}"
        yield {"port": port, "url": url, "log": log_path, "process": process,
               "before_run": _recommend_before_any_run(url, process)}
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=10)


def _recommend_before_any_run(url: str, process: subprocess.Popen[bytes]) -> httpx.Response:
    """``POST /recommend`` on a fresh home: no recommender, nothing published yet."""
    import time

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return httpx.post(f"{url}/recommend", json={"user_id": "1"}, timeout=10)
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError("shopflow serve did not come up")


@pytest.fixture(scope="module")
def good_run(workspace: dict[str, Path], service: dict[str, Any]) -> dict[str, Any]:
    rc, summary, output = run_pipeline(
        workspace["home"], service["port"], "--config", str(workspace["config"]),
        "--param", "force_promote=true", "--param", "force_reason=e2e: first model")
    return {"rc": rc, "summary": summary, "output": output}


@pytest.fixture(scope="module")
def blocked_run(workspace: dict[str, Path], service: dict[str, Any],
                good_run: dict[str, Any]) -> dict[str, Any]:
    """A second run on a file where most rows have no user id: gate 1 on raw must block."""
    import pandas as pd

    home = workspace["home"]
    ledger = Ledger(f"sqlite:///{home / 'ledger.db'}")
    before = {"production": ledger.production(), "candidates": len(ledger.candidates()),
              "digest": _state_digest(home)}
    ledger.close()
    synthetic = next((home / "data" / "synthetic").glob("*.parquet"))
    frame = pd.read_parquet(synthetic).head(3000).copy()
    frame.loc[frame.index[: int(len(frame) * 0.6)], "user_id"] = None
    bad = workspace["root"] / "no_user_ids.csv"
    frame.to_csv(bad, index=False)
    rc, summary, output = run_pipeline(
        home, service["port"], "--config", str(workspace["config"]),
        "--param", f"source_path={bad}", *RECOMMEND_PARAMS)
    return {"rc": rc, "summary": summary, "output": output, "before": before}


def _state_digest(home: Path) -> dict[str, str]:
    """sha256 of everything a blocked batch must leave alone, by what it is.

    Published marts and Feast's offline files by their bytes; the warehouse marts, the
    online store and the model store by their content (SQLite and DuckDB files may be
    rewritten by a checkpoint without any row changing).
    """
    import hashlib
    import sqlite3

    import duckdb

    digest: dict[str, str] = {}
    for folder in (home / "data" / "marts", home / "feast" / "data"):
        for path in sorted(folder.glob("*.parquet")):
            digest[str(path.relative_to(home))] = hashlib.sha256(path.read_bytes()).hexdigest()
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as conn:
        for table in ("user_features", "item_features", "purchase_labels"):
            rows = conn.execute(f"select * from marts.{table} order by all").fetchall()
            digest[f"warehouse:marts.{table}"] = hashlib.sha256(repr(rows).encode()).hexdigest()
    online = sqlite3.connect(f"file:{home / 'feast' / 'online.db'}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in online.execute(
            "select name from sqlite_master where type = 'table' order by name")]
        for table in tables:
            rows = sorted(online.execute(f'select * from "{table}"').fetchall(), key=repr)
            digest[f"online:{table}"] = hashlib.sha256(repr(rows).encode()).hexdigest()
    finally:
        online.close()
    for path in sorted((home / "bentoml" / "models").rglob("*")):
        if path.is_file():
            digest[str(path.relative_to(home))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


def _tasks(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["task"]: t for t in summary["stages"]}


def test_good_run_succeeds_with_every_stage(good_run: dict[str, Any],
                                            service: dict[str, Any]) -> None:
    summary = good_run["summary"]
    assert good_run["rc"] == 0, good_run["output"][-4000:] + service["log"].read_text()[-3000:]
    assert summary["state"] == "success"
    tasks = _tasks(summary)
    for name in ("plan", "ingest", "gate_raw", "dbt_staging", "gate_staging",
                 "dbt_intermediate", "dbt_marts", "gate_marts", "publish_marts",
                 "feast_apply", "feast_materialize", "training_set", "evaluate",
                 "champion_gate", "register", "deploy", "post_deploy_check",
                 "train_recommender"):
        assert tasks[name]["state"] == "success", (name, tasks[name])
        assert tasks[name]["seconds"] is not None
    # one mapped task per family
    assert {"train_candidate[baseline]", "train_candidate[xgboost]"} <= set(tasks)


def test_the_frozen_v1_features_are_published_exported_and_online(
        good_run: dict[str, Any], workspace: dict[str, Path]) -> None:
    """A champion on propensity_v1 stays servable: the run built, published and loaded v1."""
    import sqlite3

    assert good_run["rc"] == 0
    home = workspace["home"]
    assert (home / "data" / "marts" / "user_features_v1.parquet").is_file()
    assert (home / "feast" / "data" / "user_features_v1.parquet").is_file()
    with sqlite3.connect(home / "feast" / "online.db") as conn:
        tables = {row[0] for row in conn.execute("select name from sqlite_master")}
        (v1_table,) = [t for t in tables if t.endswith("_user_features_v1_fv")]
        assert conn.execute(f'select count(*) from "{v1_table}"').fetchone()[0] > 0


def test_service_hot_swapped_to_the_promoted_model_and_gate_3_passed(
        good_run: dict[str, Any], service: dict[str, Any], workspace: dict[str, Path]) -> None:
    decision = good_run["summary"]["decision"]
    gate3 = good_run["summary"]["gates"]["post_deploy_check"]
    assert gate3["status"] == "pass"
    report = gate3["result"]["report"]
    assert report["version"] == decision["version"] and report["golden_ok"] is True
    assert report["requests"] > 0 and report["error_rate"] <= 0.01
    meta = httpx.get(f"{service['url']}/metadata", timeout=10).json()
    assert meta["model_version"] == decision["version"]
    ledger = Ledger(f"sqlite:///{workspace['home'] / 'ledger.db'}")
    try:
        deployment = ledger.events(kind="deployment")[-1]
        assert deployment.version == decision["version"]
        # after gate 3 the winner was packaged as a Bento, its tag beside the version
        bento = gate3["result"]["bento"]
        assert bento["version"] == decision["version"] and bento["bento"], bento
        assert ledger.candidate(decision["version"]).bento == bento["bento"]
    finally:
        ledger.close()


def test_good_run_reports_gates_leaderboard_and_decision(good_run: dict[str, Any]) -> None:
    summary = good_run["summary"]
    gates = summary["gates"]
    for layer in ("raw", "staging", "marts"):
        assert gates[f"quality_gate[{layer}]"]["status"] == "pass"
    families = {row["family"] for row in summary["leaderboard"]}
    assert families == {"baseline", "xgboost"}
    for row in summary["leaderboard"]:
        assert 0.5 < row["metrics"]["roc_auc"] <= 1.0, row
    decision = summary["decision"]
    assert decision["promote"] is True and decision["forced"] is True
    assert gates["champion_gate"]["status"] == "promote"


def test_forced_promotion_is_in_the_ledger_with_who_and_why(
        good_run: dict[str, Any], workspace: dict[str, Path]) -> None:
    decision = good_run["summary"]["decision"]
    ledger = Ledger(f"sqlite:///{workspace['home'] / 'ledger.db'}")
    try:
        production = ledger.production()
        assert production is not None and production.version == decision["version"]
        promotion = ledger.events(kind="promotion")[-1]
        assert promotion.version == decision["version"]
        assert "e2e: first model" in promotion.reason or promotion.details.get("forced")
        assert promotion.actor.startswith("airflow")
        run_candidates = {c.family for c in ledger.candidates()}
        assert run_candidates == {"baseline", "xgboost"}
    finally:
        ledger.close()
    report = next((workspace["home"] / "reports" / "runs").glob("*/report.html"))
    assert report.stat().st_size > 0
    reference = workspace["home"] / "monitoring" / "reference" / f"{decision['version']}.parquet"
    assert reference.is_file(), "promotion must leave monitoring its training reference"


def test_blocked_gate_stops_the_run_and_leaves_the_model_alone(
        blocked_run: dict[str, Any], workspace: dict[str, Path],
        service: dict[str, Any]) -> None:
    summary = blocked_run["summary"]
    assert blocked_run["rc"] == 3, blocked_run["output"][-4000:]
    assert summary["state"] == "failed"
    assert summary["blocked"] == ["quality_gate[raw]"]
    assert summary["gates"]["quality_gate[raw]"]["status"] == "blocked"
    tasks = _tasks(summary)
    assert tasks["gate_raw"]["state"] == "failed"
    for name, task in tasks.items():
        if name.split("[")[0] not in UPSTREAM_OF_EVERYTHING:
            assert task["state"] in {"upstream_failed", "none", "skipped"}, (name, task)
    ledger = Ledger(f"sqlite:///{workspace['home'] / 'ledger.db'}")
    try:
        before = blocked_run["before"]
        assert ledger.production() is not None
        assert ledger.production().version == before["production"].version
        assert len(ledger.candidates()) == before["candidates"]
        failure = ledger.events(kind="rejection")[-1]
        assert failure.details.get("task_id") == "gate_raw"
        assert failure.details.get("event") == "task_failed"
    finally:
        ledger.close()
    served = httpx.get(f"{service['url']}/metadata", timeout=10).json()
    assert served["model_version"] == blocked_run["before"]["production"].version


def test_blocked_batch_leaves_marts_features_and_models_byte_for_byte(
        blocked_run: dict[str, Any], workspace: dict[str, Path]) -> None:
    before = blocked_run["before"]["digest"]
    assert any(key.startswith("online:") for key in before)
    assert any(key.startswith("data/marts/") for key in before)
    after = _state_digest(workspace["home"])
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert changed == [], f"a blocked batch changed: {changed}"


def test_recommender_trained_gated_and_recorded_beside_the_propensity_model(
        good_run: dict[str, Any], workspace: dict[str, Path]) -> None:
    summary = good_run["summary"]
    recommendations = summary["recommendations"]
    assert recommendations["status"] == "success", recommendations
    models = {row["model"] for row in recommendations["leaderboard"]}
    assert models == {"popularity", "lightgbm", "torch"}
    for row in recommendations["leaderboard"]:
        assert 0.0 <= row["metrics"]["ndcg@10"] <= 1.0
        assert 0.0 <= row["metrics"]["recall@10"] <= 1.0
    decision = recommendations["decision"]
    assert summary["gates"]["recommender_gate"]["status"] == (
        "promote" if decision["promote"] else "reject")
    ledger = Ledger(f"sqlite:///{workspace['home'] / 'ledger.db'}")
    try:
        event = ledger.events(model="recommender")[-1]
        assert event.version == decision["version"]
        assert event.kind == ("promotion" if decision["promote"] else "rejection")
        assert ledger.candidate(decision["version"]).model == "recommender"
        # the propensity history holds none of it
        assert decision["version"] not in {c.version for c in ledger.candidates()}
    finally:
        ledger.close()
    status = subprocess.run(
        [sys.executable, "-m", "shopflow.cli", "status", "--json"],
        env=_env(workspace["home"], 0), capture_output=True, text=True, timeout=120)
    data = json.loads(status.stdout)
    assert data["production"]["version"] == summary["decision"]["version"]
    assert data["recommender"]["events"][-1]["version"] == decision["version"]


def test_recommend_answers_over_http_after_the_run(
        good_run: dict[str, Any], service: dict[str, Any], workspace: dict[str, Path]) -> None:
    import time

    import pandas as pd

    before = service["before_run"]
    assert before.status_code == 503 and "no recommender" in before.json()["error"]
    decision = good_run["summary"]["recommendations"]["decision"]
    expected = decision["version"] if decision["promote"] else "popularity"
    deadline = time.monotonic() + 60
    served = None
    while time.monotonic() < deadline:
        served = httpx.get(f"{service['url']}/metadata", timeout=10).json()["recommender"]
        if served["model_version"] == expected:
            break
        time.sleep(0.5)
    assert served is not None and served["model_version"] == expected, served
    users = pd.read_parquet(workspace["home"] / "data" / "marts" / "user_features.parquet",
                            columns=["user_id", "cutoff_time"])
    user = str(users.loc[users["cutoff_time"] == users["cutoff_time"].max(), "user_id"].iloc[0])
    response = httpx.post(f"{service['url']}/recommend", json={"user_id": user, "k": 5},
                          timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == expected and body["user_id"] == user
    assert len(body["items"]) == 5
    scores = [item["score"] for item in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert body["cold_start"] is (expected == "popularity")
    bad = httpx.post(f"{service['url']}/recommend", json={"user_id": user, "k": 0}, timeout=10)
    assert bad.status_code == 422 and "k" in bad.json()["error"]
