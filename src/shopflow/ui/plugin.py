"""The Airflow 3 plugin: the Shopflow view in the api-server, the menu and the run tabs.

Airflow loads it from the repository's ``plugins/`` folder (``AIRFLOW__CORE__PLUGINS_FOLDER``,
set by ``shopflow airflow up`` and the container image). ``fastapi_apps`` mounts the view
at ``/shopflow``; ``external_views`` add "Shopflow" menu entries and a "Shopflow" tab on a
DAG run and on a task instance of the training DAG (Airflow fills ``{RUN_ID}`` and
``{TASK_ID}``). Hrefs are relative: the UI resolves them against its base URL.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from shopflow.ui.app import URL_PREFIX, create_app

_BASE = URL_PREFIX.lstrip("/")


def external_views() -> list[dict[str, Any]]:
    """The menu entries (category Shopflow) and the DAG-run / task-instance tabs."""
    nav = [
        {"name": "Models", "href": f"{_BASE}/models", "url_route": "shopflow-models"},
        {"name": "Runs", "href": f"{_BASE}/runs", "url_route": "shopflow-runs"},
        {"name": "Monitoring", "href": f"{_BASE}/monitoring", "url_route": "shopflow-monitoring"},
        {"name": "dbt docs", "href": f"{_BASE}/dbt-docs/", "url_route": "shopflow-dbt-docs"},
    ]
    for view in nav:
        view.update(destination="nav", category="Shopflow")
    tabs = [
        {"name": "Shopflow", "href": f"{_BASE}/runs/{{RUN_ID}}", "destination": "dag_run",
         "url_route": "shopflow-run"},
        {"name": "Shopflow", "href": f"{_BASE}/runs/{{RUN_ID}}?task={{TASK_ID}}",
         "destination": "task_instance", "url_route": "shopflow-task"},
    ]
    return nav + tabs


class ShopflowPlugin(AirflowPlugin):
    """Models, runs, monitoring and rollback of Shopflow, inside the Airflow UI."""

    name = "shopflow"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Shopflow"}]
    external_views = external_views()
