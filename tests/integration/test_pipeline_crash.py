"""The training DAG killed with SIGKILL at every risky instant, then run again.

``SHOPFLOW_FAULT`` (:mod:`shopflow.faults`) makes the ``shopflow pipeline run`` process
kill itself at a named point: between stages (after a stage's work, before Airflow
records it) and inside the long ones (ingest before its batch is recorded, dbt between
two models, publish between writing a mart set and switching to it, materialize between
two views, train between storing a model and its ledger row, register between the
monitoring artefacts and the ledger write).

The kills are chained in one home, in stage order: each re-run first passes the point
the run before died at, then dies at the next one; a last run with no fault must succeed.
The home must then hold exactly what a home with one clean run holds: the same raw,
quarantine and batch counts, the same published marts, the same online store entities
and timestamps, and a production model that is in the model store, has its monitoring
artefacts, and is what the ledger says.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest
import yaml

from shopflow.cli.pipeline import EXIT_DEPLOY_PENDING

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TINY_RUN = {
    "generator": {"events": 6_000, "days": 56, "seed": 3},
    "task": {"horizon": "7d", "lookback": "28d", "cutoff_every": "7d"},
    "training": {"families": ["baseline"], "search_trials": 1, "search_seconds": 5},
}
#: In stage order: a run killed at one point re-runs everything before the next.
KILL_POINTS = (
    "inside:ingest",
    "after:ingest",
    "inside:dbt_layer[staging]",
    "inside:dbt_layer[marts]",
    "after:dbt_layer[marts]",
    "inside:publish_marts",
    "after:publish_marts",
    "inside:feast_materialize",
    "after:feast_materialize",
    "inside:train_candidate[baseline]",
    "after:train_candidate[baseline]",
    "after:evaluate",
    "inside:register",
    "after:register",
)
MARTS = ("user_features", "item_features", "purchase_labels")
#: No model service runs here: a run that promotes ends "deploy pending" (gate 3 waits).
SUCCEEDED = (0, EXIT_DEPLOY_PENDING)


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOPFLOW_", "AIRFLOW"))}
    env["SHOPFLOW_HOME"] = str(home)
    return env


def run_pipeline(home: Path, config: Path, *, fault: str | None = None
                 ) -> subprocess.CompletedProcess[str]:
    """One ``shopflow pipeline run`` process (recommendations off: not under test here)."""
    env = _env(home)
    if fault:
        env["SHOPFLOW_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-m", "shopflow.cli", "pipeline", "run", "--json", "--config",
         str(config), "--param", "recommend=false"],
        env=env, capture_output=True, text=True, timeout=600, cwd=home.parent,
    )


def killed_at(home: Path, point: str) -> bool:
    """Whether the Airflow log of the home says the fault fired at ``point``."""
    logs = sorted((home / "airflow" / "logs").rglob("*.log"), key=lambda p: p.stat().st_mtime)
    return any(f"SIGKILL at {point}" in p.read_text(errors="replace") for p in logs[-3:])


def facts(home: Path) -> dict[str, Any]:
    """What a run leaves that must not depend on how many times it was killed."""
    import duckdb

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as conn:
        def one(sql: str) -> Any:
            row = conn.execute(sql).fetchone()
            assert row is not None
            return row[0]

        raw = {
            "raw_events": one("select count(*) from raw.raw_events"),
            "raw_distinct_rows": one(
                "select count(*) from (select distinct source_file, source_row "
                "from raw.raw_events)"),
            "quarantine": one("select count(*) from raw.quarantine"),
            "batches": one("select count(*) from raw.ingested_files where status = 'ingested'"),
            "orphan_rows": one("select count(*) from raw.raw_events where batch_id not in "
                               "(select batch_id from raw.ingested_files)"),
            "staged": one("select count(*) from staging.stg_shop__events"),
        }
    marts = {name: pd.read_parquet(home / "data" / "marts" / f"{name}.parquet")
             for name in MARTS}
    online = {}
    with sqlite3.connect(home / "feast" / "online.db") as conn:
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type='table'")]
        for table in sorted(tables):
            online[table] = conn.execute(
                f'select count(distinct entity_key), count(*), max(event_ts), sum(event_ts) '
                f'from "{table}"').fetchone()
    return {"raw": raw, "marts": marts, "online": online}


def status(home: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "shopflow.cli", "status", "--json"],
                         env=_env(home),
                         capture_output=True, text=True, timeout=120, check=True)
    data: dict[str, Any] = json.loads(out.stdout)
    return data


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("crash_config") / "run.yaml"
    path.write_text(yaml.safe_dump(TINY_RUN))
    return path


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory, config: Path) -> dict[str, Any]:
    """One run that nobody killed: the reference."""
    home = tmp_path_factory.mktemp("crash_clean") / "home"
    proc = run_pipeline(home, config)
    assert proc.returncode in SUCCEEDED, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {"home": home, "facts": facts(home)}


@pytest.fixture(scope="module")
def crashed(tmp_path_factory: pytest.TempPathFactory, config: Path) -> dict[str, Any]:
    """The chain of killed runs, then one that must succeed."""
    home = tmp_path_factory.mktemp("crash_chain") / "home"
    outcomes = {}
    for point in KILL_POINTS:
        proc = run_pipeline(home, config, fault=point)
        outcomes[point] = {"rc": proc.returncode, "fired": killed_at(home, point)}
        print(f"fault {point}: rc {proc.returncode}, fired {outcomes[point]['fired']}")
    final = run_pipeline(home, config)
    return {"home": home, "outcomes": outcomes, "final": final}


def test_every_fault_fired_and_stopped_the_run(crashed: dict[str, Any]) -> None:
    for point, outcome in crashed["outcomes"].items():
        assert outcome["fired"], f"{point}: the run never reached this point"
        assert outcome["rc"] not in SUCCEEDED, f"{point}: a run killed there reported success"


def test_the_run_after_the_crashes_succeeds(crashed: dict[str, Any]) -> None:
    final = crashed["final"]
    assert final.returncode in SUCCEEDED, final.stdout[-4000:] + final.stderr[-4000:]


def test_no_row_lost_or_duplicated(crashed: dict[str, Any], clean: dict[str, Any]) -> None:
    got, want = facts(crashed["home"]), clean["facts"]
    assert got["raw"] == want["raw"]
    assert got["raw"]["raw_events"] == got["raw"]["raw_distinct_rows"]
    assert got["raw"]["orphan_rows"] == 0
    for name in MARTS:
        pd.testing.assert_frame_equal(got["marts"][name], want["marts"][name], obj=name)
    assert got["online"] == want["online"]


def test_one_mart_set_published_and_no_torn_files(crashed: dict[str, Any]) -> None:
    home = crashed["home"]
    pointer = home / "data" / "marts"
    assert pointer.is_symlink()
    kept = sorted(p.name for p in (home / "data" / "mart_versions").iterdir())
    assert len(kept) <= 2, kept  # the published set and the one before it
    leftovers = [p for p in home.rglob("*.tmp") if "airflow" not in p.parts]
    assert leftovers == [] or all(p.name.startswith(".") for p in leftovers)


def test_ledger_and_served_model_agree(crashed: dict[str, Any]) -> None:
    home = crashed["home"]
    data = status(home)
    # production, or the candidate waiting for gate 3 (no service here): the model the
    # ledger names is in the model store and has what monitoring needs
    named = data["production"] or data.get("pending")
    assert named is not None
    version = named["version"]
    assert list((home / "bentoml" / "models").glob(f"*/{version}")), version
    assert (home / "monitoring" / "deployments" / f"{version}.json").is_file()
    assert (home / "monitoring" / "reference" / f"{version}.parquet").is_file()
    watermark = json.loads((home / "monitoring" / "deployments" / f"{version}.json")
                           .read_text())
    assert watermark["version"] == version
    # every model the ledger ever promoted is still loadable from the store
    promoted = {e["version"] for e in data["events"] if e["kind"] == "promotion"}
    for promoted_version in promoted:
        assert list((home / "bentoml" / "models").glob(f"*/{promoted_version}"))
    # the last promotion is the model the ledger names
    promotions = [e for e in data["events"] if e["kind"] == "promotion"]
    assert promotions and promotions[-1]["version"] == version
