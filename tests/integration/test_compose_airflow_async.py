"""Airflow's async metadata engine, configured as docker-compose.yml configures it, connects.

Without ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC`` Airflow derives
``postgresql+asyncpg://`` from the ``postgresql+psycopg2://`` URL and the API server and
scheduler die with ``ModuleNotFoundError: asyncpg`` (not installed). The compose file's
URLs, pointed at the local PostgreSQL server, in a fresh Airflow process: both engines
answer, and without the async one the failure is the one the compose file prevents.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
PROBE = """
import asyncio
import sqlalchemy as sa
from airflow import settings
from sqlalchemy.ext.asyncio import create_async_engine

async def main():
    engine = create_async_engine(settings.SQL_ALCHEMY_CONN_ASYNC)
    async with engine.connect() as conn:
        print("ASYNC", (await conn.execute(sa.text("select 1"))).scalar())
    await engine.dispose()

print("DRIVER", settings.SQL_ALCHEMY_CONN_ASYNC.split("://")[0])
asyncio.run(main())
"""


def _local(url: str, server: sa.URL) -> str:
    """A compose URL's scheme, on the local server's host, login and database."""
    scheme = url.split("://", 1)[0]
    return server.set(drivername=scheme).render_as_string(hide_password=False)


def _run(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          timeout=180, env={"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path),
                                            **env})


def test_airflow_async_metadata_url_connects(postgres_url: str, tmp_path: Path) -> None:
    env = yaml.safe_load(COMPOSE.read_text())["services"]["airflow-scheduler"]["environment"]
    server = sa.make_url(postgres_url)
    sync = _local(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], server)
    async_url = _local(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"], server)
    configured = _run({"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sync,
                       "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": async_url}, tmp_path)
    assert configured.returncode == 0, configured.stderr[-3000:]
    assert "DRIVER postgresql+psycopg\n" in configured.stdout
    assert "ASYNC 1" in configured.stdout
    derived = _run({"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sync}, tmp_path)
    assert derived.returncode != 0 and "No module named 'asyncpg'" in derived.stderr
