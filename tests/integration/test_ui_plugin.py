"""The Shopflow view in a real Airflow api-server: every page against a ledger we wrote.

The api-server is the one ``make airflow`` starts (same environment, plugins folder and
auth manager), alone on loopback. Its SHOPFLOW_HOME holds a ledger with a known history
(three propensity models: promotion, rejection, promotion, rollback, promotion), a
training run's records and reports, and a monitoring run's records with a stage result
key no code knows about. Each page is checked for its status, the numbers and names it
shows, that it needs an Airflow login, and that it loads nothing from another host; the
Roll back form triggers ``shopflow_rollback`` as the logged-in user.
"""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from airflow_server import api_server
from shopflow.ledger import Ledger
from shopflow.orchestration.runtime import actor_of
from shopflow.pipeline.runs import run_dir, safe_run_id, write_record
from shopflow.pipeline.vocabulary import StageRecord

if TYPE_CHECKING:
    from collections.abc import Iterator

    from shopflow.orchestration.stack import AirflowStack
    from shopflow.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TRAINING_RUN = "manual__2026-11-30T10:00:00+00:00"
MONITORING_RUN = "scheduled__2026-11-30T04:00:00+00:00"
METRICS = {"v1": 0.6125, "v2": 0.7312, "v3": 0.7456}
PSI = {"events_7d": 0.3125, "monetary_30d": 0.0213}


def _ledger(settings: Settings) -> list[Any]:
    """v1 promoted, v2 rejected then promoted, rolled back to v1, v3 promoted (by time)."""
    ledger = Ledger(settings.ledger_url)
    try:
        for version, family in (("v1", "baseline"), ("v2", "xgboost"), ("v3", "lightgbm")):
            ledger.record_candidate(version=version, family=family,
                                    metrics={"roc_auc": METRICS[version], "log_loss": 0.41},
                                    run_id=TRAINING_RUN)
        steps = [
            lambda: ledger.promote("v1", actor="airflow:alice", reason="first model: floors met"),
            lambda: ledger.record_event(kind="rejection", version="v2", actor="airflow:alice",
                                        reason="gain below min_improvement"),
            lambda: ledger.promote("v2", actor="airflow:carol", reason="beats champion by 0.12"),
            lambda: ledger.record_rollback(to_version="v1", actor="airflow:bob",
                                           reason="canary errors on checkout"),
            lambda: ledger.promote("v3", actor="airflow:carol", reason="beats champion by 0.13"),
        ]
        for step in steps:
            step()
            time.sleep(0.05)  # distinct timestamps, so "served at T" has one answer
        return ledger.events()
    finally:
        ledger.close()


def _training_run(settings: Settings) -> None:
    folder = run_dir(settings, TRAINING_RUN)
    report = folder / "report.html"
    report.write_text("<html><body><h1>training report of the test run</h1></body></html>")
    quality = settings.reports_dir / "quality"
    quality.mkdir(parents=True, exist_ok=True)
    (quality / "raw-1.json").write_text(json.dumps({"layer": "raw"}))
    (quality / "raw-1.html").write_text("<html><body>gate 1 raw page</body></html>")
    docs = settings.reports_dir / "data_docs"
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "index.html").write_text("<html><body>data docs index</body></html>")
    leaderboard = [
        {"version": "v3", "family": "lightgbm", "winner": True,
         "metrics": {"roc_auc": METRICS["v3"], "log_loss": 0.4012}},
        {"version": "v2", "family": "xgboost", "winner": False,
         "metrics": {"roc_auc": METRICS["v2"], "log_loss": 0.4107}},
    ]
    records = [
        StageRecord("quality_gate[raw]", "success", 1.5, {
            "layer": "raw", "passed": True, "summary": "quality gate 'raw' passed: 12 checks",
            "batches": [{"success": True, "headline": "quality gate 'raw' passed: 12 checks",
                         "report_path": str(quality / "raw-1.json"),
                         "data_docs_path": str(docs / "index.html")}]}, task_id="gate_raw"),
        StageRecord("evaluate", "success", 3.0, {"leaderboard": leaderboard, "winner": "v3"}),
        StageRecord("champion_gate", "success", 2.0, {
            "decision": {"promote": True, "forced": False, "version": "v3",
                         "family": "lightgbm", "primary_metric": "roc_auc",
                         "reference_role": "champion", "reference_version": "v1",
                         "reason": "beats champion by 0.13"},
            "report": str(report), "gate_path": str(folder / "gate2.json")}),
    ]
    for record in records:
        write_record(settings, TRAINING_RUN, record)
    evaluations = [{"version": v, "family": f, "metrics": {"roc_auc": METRICS[v]},
                    "curves": {"roc": {"fpr": [0.0, 0.3, 1.0], "tpr": [0.0, 0.7, 1.0]}},
                    "calibration": [{"lower": 0.0, "upper": 0.5, "count": 10,
                                     "mean_predicted": 0.2, "observed_rate": 0.25},
                                    {"lower": 0.5, "upper": 1.0, "count": 5,
                                     "mean_predicted": 0.7, "observed_rate": 0.6}]}
                   for v, f in (("v3", "lightgbm"), ("v2", "xgboost"))]
    (folder / "evaluation.json").write_text(json.dumps({"evaluations": evaluations}))
    (folder / "gate2.json").write_text(json.dumps({"decision": {"promote": True}}))


def _monitoring_run(settings: Settings) -> None:
    write_record(settings, MONITORING_RUN, StageRecord("feature_drift", "success", 0.8, {
        "version": "v3", "psi": PSI, "threshold": 0.2, "max_psi": PSI["events_7d"],
        "drifted": ["events_7d"], "reference_rows": 500, "current_rows": 480, "notes": []}))
    write_record(settings, MONITORING_RUN, StageRecord("live_gate", "success", 1.1, {
        "status": "pass", "reason": "production holds up", "production_version": "v3",
        "previous_version": "v1", "comparison": {
            "metric": "roc_auc", "production": {"roc_auc": 0.7021}, "previous": {"roc_auc": 0.6544},
            "delta": 0.0477, "tolerance": 0.01, "rows": 321}}))
    # the shadow readout as the monitoring stage computes it from the service's shadow log
    from shopflow.monitoring.experiment import run_shadow_readout

    shadow = settings.reports_dir / "shadow"
    shadow.mkdir(parents=True, exist_ok=True)
    (shadow / "shadow-2026-11-30.jsonl").write_text("".join(
        json.dumps({"at": "2026-11-30T09:00:00", "user": f"h{i}", "champion_version": "v3",
                    "champion": p, "challenger_version": "v4", "challenger": c}) + "\n"
        for i, (p, c) in enumerate(((0.2, 0.4), (0.6, 0.5)))))
    write_record(settings, MONITORING_RUN, StageRecord(
        "shadow_readout", "success", 0.3, run_shadow_readout(settings)))
    # a readout another stage may add later: shown as stored, without a code change
    write_record(settings, MONITORING_RUN, StageRecord("staleness", "success", 0.1, {
        "feature_age_hours": 30.5, "verdict": "stale beyond 24h"}))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    root = tmp_path_factory.mktemp("ui_plugin")
    with api_server(root / "home") as running:
        settings = running.settings
        running.events = _ledger(settings)  # type: ignore[attr-defined]
        _training_run(settings)
        _monitoring_run(settings)
        target = settings.home_dir / "dbt" / "target"
        target.mkdir(parents=True, exist_ok=True)
        (target / "static_index.html").write_text("<html><body>dbt docs of the marts</body>")
        yield running


@pytest.fixture(scope="module")
def ui(stack: AirflowStack) -> Iterator[httpx.Client]:
    with stack.client() as client:
        client.base_url = client.base_url.join("/shopflow")
        yield client


def _offline(html: str) -> None:
    """No asset from another host: every src/href is relative or on this server."""
    external = re.findall(r'(?:src|href)="(https?:)?//', html)
    assert not external, external
    assert "cdn" not in html.lower()


def test_plugin_is_registered_with_its_menu_and_run_tabs(stack: AirflowStack) -> None:
    with stack.client() as api:
        plugins = api.get("/api/v2/plugins").json()["plugins"]
    shopflow = next(p for p in plugins if p["name"] == "shopflow")
    assert [a["url_prefix"] for a in shopflow["fastapi_apps"]] == ["/shopflow"]
    destinations = {v["destination"]: v["href"] for v in shopflow["external_views"]}
    assert destinations["dag_run"] == "shopflow/runs/{RUN_ID}"
    assert destinations["task_instance"] == "shopflow/runs/{RUN_ID}?task={TASK_ID}"
    assert {v["name"] for v in shopflow["external_views"] if v["destination"] == "nav"} == {
        "Models", "Runs", "Monitoring", "dbt docs"}


@pytest.mark.parametrize("page", ["/models", "/runs", f"/runs/{TRAINING_RUN}", "/monitoring",
                                  "/models/propensity/history.svg", "/files/data_docs/index.html",
                                  "/dbt-docs/"])
def test_every_page_needs_an_airflow_login(stack: AirflowStack, page: str) -> None:
    anonymous = httpx.get(f"{stack.url}/shopflow{page}", timeout=30)
    assert anonymous.status_code == 401, anonymous.text
    forged = httpx.get(f"{stack.url}/shopflow{page}", cookies={"_token": "not-a-jwt"}, timeout=30)
    assert forged.status_code in (401, 403), forged.text


def test_a_browser_without_login_is_sent_to_airflows_login(stack: AirflowStack) -> None:
    page = httpx.get(f"{stack.url}/shopflow/models", headers={"Accept": "text/html"}, timeout=30)
    assert page.status_code == 401
    assert 'href="/auth/login"' in page.text


def test_the_ui_cookie_logs_in_like_the_airflow_ui(stack: AirflowStack) -> None:
    page = httpx.get(f"{stack.url}/shopflow/models", cookies={"_token": stack.token()},
                     timeout=30)
    assert page.status_code == 200, page.text
    assert stack.login.user in page.text  # the rollback note names the logged-in user


def test_models_page_shows_production_and_the_ledger_timeline(ui: httpx.Client) -> None:
    page = ui.get("/models")
    assert page.status_code == 200, page.text
    html = page.text
    _offline(html)
    assert '<span id="production-version">v3</span>' in html
    assert f'data-metric="roc_auc">{METRICS["v3"]:.4f}<' in html
    timeline = html[html.index('id="timeline"'):]
    kinds = re.findall(r'<td class="kind-(\w+)">', timeline)
    assert kinds == ["promotion", "rollback", "promotion", "rejection", "promotion"]
    for actor, reason in (("airflow:bob", "canary errors on checkout"),
                          ("airflow:alice", "gain below min_improvement"),
                          ("airflow:carol", "beats champion by 0.13")):
        assert actor in timeline and reason in timeline
    assert 'action="/shopflow/rollback"' in html and 'name="reason"' in html


def test_which_model_served_at_time_t(stack: AirflowStack, ui: httpx.Client) -> None:
    events = stack.events  # type: ignore[attr-defined]
    rollback = next(e for e in events if e.kind == "rollback")
    between = (rollback.at + timedelta(milliseconds=10)).isoformat()
    page = ui.get("/models", params={"at": between})
    assert page.status_code == 200, page.text
    assert '<b id="served-version">v1</b>' in page.text
    served = page.text[page.text.index('id="served-at"'):]
    assert "airflow:bob" in served[:600] and "canary errors on checkout" in served[:600]
    before = ui.get("/models", params={"at": "2001-01-01"})
    assert '<b id="served-version">no model</b>' in before.text
    bad = ui.get("/models", params={"at": "yesterday"})
    assert bad.status_code == 422 and "at:" in bad.text


def test_models_page_of_the_recommender_and_an_unknown_model(ui: httpx.Client) -> None:
    page = ui.get("/models", params={"model": "recommender"})
    assert page.status_code == 200 and "No recommender model in production yet" in page.text
    assert ui.get("/models", params={"model": "nope"}).status_code == 404


def test_metric_history_plot_is_svg(ui: httpx.Client) -> None:
    plot = ui.get("/models/propensity/history.svg")
    assert plot.status_code == 200
    assert plot.headers["content-type"].startswith("image/svg+xml")
    assert "<svg" in plot.text and "roc_auc" in plot.text


def test_runs_lists_the_training_and_monitoring_runs(ui: httpx.Client) -> None:
    page = ui.get("/runs")
    assert page.status_code == 200
    kinds = dict(re.findall(r'runs/([^"]+)">[^<]+</a></td><td>(\w+)</td>', page.text))
    assert kinds == {safe_run_id(TRAINING_RUN): "training",
                     safe_run_id(MONITORING_RUN): "monitoring"}
    only = ui.get("/runs", params={"kind": "monitoring"}).text
    assert safe_run_id(MONITORING_RUN) in only and safe_run_id(TRAINING_RUN) not in only


def test_run_page_shows_leaderboard_decision_and_links_every_report(ui: httpx.Client) -> None:
    page = ui.get(f"/runs/{TRAINING_RUN}")  # Airflow's run id, as the DAG-run tab passes it
    assert page.status_code == 200, page.text
    html = page.text
    _offline(html)
    board = html[html.index('id="leaderboard"'):html.index("</table>", html.index('id="leaderboard"'))]
    assert board.index("v3") < board.index("v2")
    for value in (METRICS["v3"], METRICS["v2"], 0.4012):
        assert f">{value:.4f}<" in board
    assert "PROMOTED" in html and "beats champion by 0.13" in html
    links = re.findall(r'href="/shopflow/files/([^"]+)"', html)
    assert set(links) == {f"runs/{safe_run_id(TRAINING_RUN)}/report.html",
                          f"runs/{safe_run_id(TRAINING_RUN)}/gate2.json",
                          "quality/raw-1.html", "quality/raw-1.json", "data_docs/index.html"}
    assert "training report of the test run" in ui.get(f"/files/runs/{safe_run_id(TRAINING_RUN)}"
                                                       "/report.html").text
    assert "gate 1 raw page" in ui.get("/files/quality/raw-1.html").text
    assert "data docs index" in ui.get("/files/data_docs/index.html").text
    assert 'src="/shopflow/runs/' in html  # the ROC / calibration plot


def test_task_tab_shows_the_tasks_record(ui: httpx.Client) -> None:
    gate = ui.get(f"/runs/{TRAINING_RUN}", params={"task": "gate_raw"}).text  # by task id
    assert re.findall(r'<tr id="stage-[^"]+" class="highlight">', gate) == [
        '<tr id="stage-quality_gate[raw]" class="highlight">']
    assert "quality_gate[raw]: what it recorded" in gate and "12 checks" in gate
    older = ui.get(f"/runs/{TRAINING_RUN}", params={"task": "champion_gate"}).text  # no task id
    assert '<tr id="stage-champion_gate" class="highlight">' in older
    assert "champion_gate: what it recorded" in older


def test_run_curves_plot_and_unknown_run(ui: httpx.Client) -> None:
    plot = ui.get(f"/runs/{TRAINING_RUN}/curves.svg")
    assert plot.status_code == 200 and "<svg" in plot.text and "AUC 0.746" in plot.text
    assert ui.get("/runs/no_such_run").status_code == 404


def test_files_outside_the_reports_are_refused(ui: httpx.Client) -> None:
    for path in ("/files/..%2Fledger.db", "/files/%2E%2E/%2E%2E/etc/passwd", "/files/nope.html"):
        assert ui.get(path).status_code == 404, path


def test_monitoring_page_shows_drift_live_gate_and_new_keys(ui: httpx.Client) -> None:
    page = ui.get("/monitoring")
    assert page.status_code == 200, page.text
    html = page.text
    _offline(html)
    assert f">{PSI['events_7d']:.4f}<" in html and f">{PSI['monetary_30d']:.4f}<" in html
    assert ">0.7021<" in html and ">0.6544<" in html and ">321<" in html  # gate 4, per version
    assert "feature_age_hours" in html and "stale beyond 24h" in html  # a key no code knows
    shadow = html[html.index('id="stage-shadow_readout"'):]
    # v4 shadowed v3: one of two answers on the same side of 0.5, |deltas| 0.2 and 0.1
    assert ">v4<" in shadow and ">0.5000<" in shadow and ">0.1500<" in shadow
    plot = ui.get(f"/monitoring/{safe_run_id(MONITORING_RUN)}/psi.svg")
    assert plot.status_code == 200 and "events_7d" in plot.text and "threshold 0.2" in plot.text


def test_dbt_docs_are_served(ui: httpx.Client) -> None:
    page = ui.get("/dbt-docs/")
    assert page.status_code == 200 and "dbt docs of the marts" in page.text


def test_rollback_needs_a_reason_and_runs_as_the_logged_in_user(
        stack: AirflowStack, ui: httpx.Client) -> None:
    refused = ui.post("/rollback", data={"reason": " ", "from_version": "v3"})
    assert refused.status_code == 422 and "reason" in refused.text
    anonymous = httpx.post(f"{stack.url}/shopflow/rollback", data={"reason": "canary errors"},
                           timeout=30)
    assert anonymous.status_code == 401
    foreign = ui.post("/rollback", data={"reason": "canary errors"},
                      headers={"Origin": "http://127.0.0.1:3000"})  # another port, same host
    assert foreign.status_code == 403 and "another origin" in foreign.text
    done = ui.post("/rollback", data={"reason": "checkout errors after v3",
                                      "from_version": "v3", "version": ""},
                   headers={"Origin": stack.url})  # what a browser sends from the page
    assert done.status_code == 200, done.text
    run_id = re.search(r"shopflow_rollback run (\S+) triggered", done.text)
    assert run_id, done.text
    with stack.client() as api:
        run = api.get(f"/api/v2/dags/shopflow_rollback/dagRuns/{run_id.group(1)}").json()
    assert run["triggering_user_name"] == stack.login.user
    # what the rollback task records as the ledger's actor for this run
    assert actor_of(SimpleNamespace(**run)) == f"airflow:{stack.login.user}"
    assert run["conf"] == {"reason": "checkout errors after v3", "version": None,
                           "from_version": "v3"}
