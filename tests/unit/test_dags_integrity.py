"""The DAG files: they import cleanly, without DB or network, and follow our conventions.

Airflow reads its configuration at import, so every check that imports Airflow runs in
one subprocess with its own AIRFLOW_HOME (never the user's ~/airflow), which prints a
JSON report that the tests below read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
DAG_IDS = {"shopflow_training", "shopflow_features", "shopflow_monitoring", "shopflow_rollback"}

PROBE = r'''
import json, socket, sys, time

request = json.loads(sys.argv[1])
network = []

def _no_network(self, address):
    network.append(repr(address))
    raise OSError(f"network access at DAG parse time: {address!r}")

socket.socket.connect = _no_network
socket.socket.connect_ex = _no_network

from sqlalchemy import event
from sqlalchemy.engine import Engine

statements = []
event.listen(Engine, "before_cursor_execute",
             lambda conn, cursor, statement, *rest: statements.append(statement))

started = time.perf_counter()
from airflow.dag_processing.dagbag import DagBag
imported = time.perf_counter()
bag = DagBag(dag_folder=request["dags"])
parsed = time.perf_counter()

from airflow.sdk.definitions.param import ParamValidationError

report = {
    "import_errors": {k: str(v)[-2000:] for k, v in bag.import_errors.items()},
    "import_seconds": imported - started,
    "parse_seconds": parsed - imported,
    "statements": statements,
    "network": network,
    "dags": {},
    "cases": [],
}
for dag_id, dag in bag.dags.items():
    try:
        dag.check_cycle()
        cycle = None
    except Exception as exc:
        cycle = str(exc)
    report["dags"][dag_id] = {
        "fileloc": dag.fileloc,
        "tags": sorted(dag.tags),
        "catchup": dag.catchup,
        "start_date": dag.start_date.isoformat() if dag.start_date else None,
        "start_tz": str(dag.start_date.tzinfo) if dag.start_date else None,
        "max_active_runs": dag.max_active_runs,
        "doc_md": dag.doc_md,
        "schedule": repr(dag.timetable),
        "timetable_summary": getattr(dag.timetable, "summary", None),
        "tasks": {t.task_id: {
            "retries": t.retries,
            "timeout": t.execution_timeout.total_seconds() if t.execution_timeout else None,
            "on_failure_callback": bool(t.on_failure_callback),
            "outlets": [getattr(o, "name", str(o)) for o in t.outlets],
            "upstream": sorted(t.upstream_task_ids),
            "mapped": "Mapped" in type(t).__name__,
            "trigger_rule": str(getattr(t.trigger_rule, "value", t.trigger_rule)),
        } for t in dag.tasks},
        "params": {k: {**dag.params.get_param(k).schema,
                       "description": dag.params.get_param(k).description} for k in dag.params},
        "defaults": {k: dag.params.get_param(k).value for k in dag.params
                     if k in dag.params and dag.params.get_param(k).value.__class__.__name__ != "ArgNotSet"},
        "cycle": cycle,
    }
for case in request["cases"]:
    dag = bag.dags[case["dag_id"]]
    params = dag.params.deep_copy() if hasattr(dag.params, "deep_copy") else __import__("copy").deepcopy(dag.params)
    try:
        for key, value in case["values"].items():
            params[key] = value
        params.validate()
        outcome = "ok"
    except ParamValidationError as exc:
        outcome = f"invalid: {exc}"
    report["cases"].append({**case, "outcome": outcome})
print("PROBE-REPORT " + json.dumps(report, default=str))
'''

GOOD_AND_BAD = [
    # (dag_id, values, valid?)
    ("shopflow_training", {}, True),
    ("shopflow_training", {"families": ["xgboost", "baseline"], "horizon": "14d",
                           "lookback": "30d", "min_improvement": 0.01}, True),
    ("shopflow_training", {"force_promote": True, "force_reason": "hotfix for campaign"}, True),
    ("shopflow_training", {"config": "/etc/shopflow/run.yaml", "dry_run": True,
                           "primary_metric": "pr_auc", "horizon": "30m"}, True),
    ("shopflow_training", {"families": ["catboost"]}, False),
    ("shopflow_training", {"families": []}, False),
    ("shopflow_training", {"families": ["xgboost", "xgboost"]}, False),
    ("shopflow_training", {"horizon": "30 days"}, False),
    ("shopflow_training", {"min_improvement": -0.1}, False),
    ("shopflow_training", {"min_improvement": "a lot"}, False),
    ("shopflow_training", {"force_promote": "yes please"}, False),
    ("shopflow_training", {"primary_metric": "accuracy"}, False),
    ("shopflow_training", {"recommend": False}, True),
    ("shopflow_training", {"recommend_families": ["lightgbm"]}, True),
    ("shopflow_training", {"recommend_families": ["xgboost"]}, False),
    ("shopflow_training", {"recommend": "sometimes"}, False),
    ("shopflow_monitoring", {"drift_threshold": 0.3, "auto_rollback": False}, True),
    ("shopflow_monitoring", {"drift_threshold": 0}, False),
    ("shopflow_monitoring", {"live_tolerance": 2}, False),
    ("shopflow_rollback", {"reason": "bad canary", "version": "abc123"}, True),
    ("shopflow_rollback", {"reason": "bad canary"}, True),
    ("shopflow_rollback", {}, False),
    ("shopflow_rollback", {"reason": ""}, False),
    ("shopflow_features", {"config": "run.yaml"}, True),
]


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Parse the DAG folder once in a clean Airflow home; network and DB use recorded."""
    home = tmp_path_factory.mktemp("airflow_home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'never_created' / 'a.db'}",
        "SHOPFLOW_HOME": str(home / "shopflow"),
    })
    request = {"dags": str(DAGS), "cases": [
        {"dag_id": d, "values": v, "valid": ok} for d, v, ok in GOOD_AND_BAD]}
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(request)], env=env,
                          capture_output=True, text=True, timeout=240, cwd=home)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("PROBE-REPORT ")), None)
    assert line, f"probe failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    report = json.loads(line.removeprefix("PROBE-REPORT "))
    assert not (home / "never_created").exists(), "parsing the DAGs created the metadata DB"
    return report


def test_every_dag_file_imports_without_errors(probe: dict[str, Any]) -> None:
    assert probe["import_errors"] == {}
    assert set(probe["dags"]) == DAG_IDS


def test_parsing_touches_no_database_and_no_network(probe: dict[str, Any]) -> None:
    assert probe["statements"] == [], "DAG files ran SQL at parse time"
    assert probe["network"] == [], "DAG files opened network connections at parse time"


def test_dag_folder_parses_quickly_once_airflow_is_imported(probe: dict[str, Any]) -> None:
    # generous bound for a shared 2-core machine; heavy imports belong inside tasks
    assert probe["parse_seconds"] < 30, probe["parse_seconds"]


def test_dags_have_no_cycles(probe: dict[str, Any]) -> None:
    assert {d: info["cycle"] for d, info in probe["dags"].items()} == dict.fromkeys(DAG_IDS)


@pytest.mark.parametrize("dag_id", sorted(DAG_IDS))
def test_dag_conventions(probe: dict[str, Any], dag_id: str) -> None:
    info = probe["dags"][dag_id]
    assert Path(info["fileloc"]).stem == dag_id
    assert "shopflow" in info["tags"] and len(info["tags"]) >= 2
    assert info["catchup"] is False
    assert info["start_tz"] in {"UTC", "Timezone('UTC')", "datetime.timezone.utc"}
    assert info["doc_md"] and info["doc_md"].strip().startswith("###")
    assert info["max_active_runs"] == 1
    for task_id, task in info["tasks"].items():
        assert task["timeout"], f"{dag_id}.{task_id} has no execution_timeout"
        assert task["on_failure_callback"], f"{dag_id}.{task_id} has no failure callback"
    for name, schema in info["params"].items():
        assert schema.get("title") and schema.get("description"), f"{dag_id} param {name}"
        assert "type" in schema, f"{dag_id} param {name} is untyped"


def test_dag_files_import_only_airflow_sdk() -> None:
    for path in DAGS.glob("*.py"):
        imports = [ln.strip() for ln in path.read_text().splitlines()
                   if ln.startswith(("import ", "from ")) and "airflow" in ln]
        assert imports, f"{path.name} does not import airflow.sdk"
        for line in imports:
            assert line.startswith("from airflow.sdk import"), f"{path.name}: {line}"


def test_training_dag_shape(probe: dict[str, Any]) -> None:
    tasks = probe["dags"]["shopflow_training"]["tasks"]
    chain = ["ingest", "gate_raw", "dbt_staging", "gate_staging", "dbt_intermediate",
             "dbt_marts", "gate_marts", "publish_marts", "feast_apply", "feast_materialize",
             "training_set", "train_candidate", "evaluate", "champion_gate", "register", "deploy",
             "post_deploy_check"]
    for upstream, downstream in zip(chain, chain[1:], strict=False):
        assert upstream in tasks[downstream]["upstream"], f"{upstream} !-> {downstream}"
    assert tasks["train_candidate"]["mapped"], "candidates must be one mapped task per family"
    # one broken family must not sink the others
    assert tasks["evaluate"]["trigger_rule"] == "all_done_min_one_success"
    assert "plan" in tasks["train_candidate"]["upstream"]
    for gate in ("gate_raw", "gate_staging", "gate_marts", "champion_gate", "post_deploy_check"):
        assert tasks[gate]["retries"] == 0, f"{gate}: a gate verdict must not be retried"
    assert tasks["ingest"]["retries"] >= 1
    assert tasks["publish_marts"]["outlets"] == ["shopflow_marts"]
    assert tasks["register"]["outlets"] == ["shopflow_production_model"]
    training = probe["dags"]["shopflow_training"]
    assert "shopflow_drift_detected" in training["schedule"] or "Asset" in training["schedule"]
    # recommendations: after the published marts, beside (not behind) the propensity branch
    assert tasks["train_recommender"]["upstream"] == ["publish_marts"]
    downstream = {t for t, info in tasks.items() if "train_recommender" in info["upstream"]}
    assert downstream == set()


def test_monitoring_emits_the_asset_that_schedules_training(probe: dict[str, Any]) -> None:
    monitoring = probe["dags"]["shopflow_monitoring"]["tasks"]
    assert monitoring["signal_retraining"]["outlets"] == ["shopflow_drift_detected"]
    assert "shopflow_drift_detected" in probe["dags"]["shopflow_training"]["schedule"]


def test_training_form_has_the_documented_params(probe: dict[str, Any]) -> None:
    params = probe["dags"]["shopflow_training"]["params"]
    for name in ("config", "lookback", "horizon", "families", "min_improvement",
                 "force_promote", "force_reason", "dry_run", "recommend", "recommend_families"):
        assert name in params
    defaults = probe["dags"]["shopflow_training"]["defaults"]
    assert defaults["force_promote"] is False and defaults["dry_run"] is False
    assert defaults["recommend"] is True


@pytest.mark.parametrize("index", range(len(GOOD_AND_BAD)))
def test_params_validate(probe: dict[str, Any], index: int) -> None:
    case = probe["cases"][index]
    if case["valid"]:
        assert case["outcome"] == "ok", case
    else:
        assert case["outcome"].startswith("invalid"), case
