"""A real ``airflow api-server`` on loopback serves our DAGs and accepts a triggered run.

The server is the api-server of ``make airflow`` (tests/airflow_server.py): Airflow's
simple auth manager with a generated login, the DAGs serialized into a SQLite metadata DB
with ``airflow dags reserialize`` (what the dag-processor does in production), and the REST
API v2 called with a JWT from ``/auth/token``. The start-up wait is bounded and the server
is always stopped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from airflow_server import api_server

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with api_server(tmp_path_factory.mktemp("airflow_api") / "home") as stack, \
            stack.client() as client:
        yield client


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
