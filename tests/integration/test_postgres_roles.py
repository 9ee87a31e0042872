"""docker/postgres/roles.sql on the real PostgreSQL server: least privilege, proved.

The same psql script the compose deployment runs at first start, run here with throwaway
role and database names (roles are server-wide: unique names, dropped afterwards). The
pipeline's role then uses the ledger as the pipeline does; the model server's role reads
it and appends its own events through the real :class:`Ledger`, and every statement that
would change history (update, delete, truncate, drop, alter, write a candidate or move
the production alias) is refused by the server.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from shopflow.ledger import Ledger

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

ROLES_SQL = Path(__file__).resolve().parents[2] / "docker" / "postgres" / "roles.sql"
HOST, PORT = "127.0.0.1", 5432


@dataclass
class Cluster:
    names: dict[str, str]

    def url(self, role: str, database: str) -> str:
        return (f"postgresql+psycopg2://{self.names[role + '_role']}:"
                f"{self.names[role + '_password']}@{HOST}:{PORT}/{self.names[database + '_db']}")


@pytest.fixture
def cluster(postgres_url: str) -> Iterator[Cluster]:
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("psql (the PostgreSQL client) is not installed")
    tag = f"t{uuid.uuid4().hex[:8]}"
    names = {f"{what}_role": f"{tag}_{what}" for what in ("airflow", "pipeline", "serve")}
    names |= {f"{what}_password": secrets.token_urlsafe(16)
              for what in ("airflow", "pipeline", "serve")}
    names |= {f"{what}_db": f"{tag}_{what}" for what in ("airflow", "shopflow", "feast")}
    admin = sa.make_url(postgres_url)
    command = [psql, "-X", "-q", "-h", HOST, "-p", str(PORT), "-U", admin.username or "postgres",
               "-d", "postgres", "-f", str(ROLES_SQL)]
    for key, value in names.items():
        command[1:1] = ["-v", f"{key}={value}"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        yield Cluster(names)
    finally:
        engine = sa.create_engine(admin.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            for what in ("airflow", "shopflow", "feast"):
                conn.exec_driver_sql(
                    f'DROP DATABASE IF EXISTS "{names[what + "_db"]}" WITH (FORCE)')
            for what in ("airflow", "pipeline", "serve"):
                conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{names[what + "_role"]}"')
        engine.dispose()


def _denied(url: str, statement: str) -> str:
    """Run ``statement`` as the role of ``url``; return the server's refusal."""
    import psycopg2.errors

    engine = sa.create_engine(url)
    try:
        with pytest.raises(sa.exc.ProgrammingError) as caught, engine.begin() as conn:
            conn.exec_driver_sql(statement)
    finally:
        engine.dispose()
    assert isinstance(caught.value.orig, psycopg2.errors.InsufficientPrivilege), caught.value
    return str(caught.value.orig)


def test_the_model_server_reads_the_ledger_and_appends_its_own_events(cluster: Cluster) -> None:
    serve_url = cluster.url("serve", "shopflow")
    # before the pipeline wrote anything: the server finds the (empty) ledger it expects
    with Ledger(serve_url) as served:
        assert served.production() is None
    with Ledger(cluster.url("pipeline", "shopflow")) as pipeline:
        pipeline.record_candidate(version="v1", family="xgboost", metrics={"roc_auc": 0.7})
        pipeline.promote("v1", actor="test", reason="first model")
        pipeline.update_candidate_metrics("v1", {"log_loss": 0.5})
    with Ledger(serve_url) as served:
        production = served.production()
        assert production is not None and production.version == "v1"
        assert [c.version for c in served.candidates()] == ["v1"]
        event_id = served.record_event(kind="rejection", version="v1", actor="shopflow-serve",
                                       reason="golden request failed",
                                       details={"stage": "serving"})
        assert event_id > 0
        assert sorted(e.kind for e in served.events()) == ["promotion", "rejection"]


HISTORY_CHANGES = [
    "UPDATE shopflow_events SET reason = 'rewritten'",
    "DELETE FROM shopflow_events",
    "TRUNCATE shopflow_events",
    "DROP TABLE shopflow_events",
    "ALTER TABLE shopflow_events ADD COLUMN x int",
    "UPDATE shopflow_aliases SET version = 'evil'",
    "INSERT INTO shopflow_aliases (alias) VALUES ('recommender:production')",
    "INSERT INTO shopflow_candidates (version, family, metrics, params, created_at) "
    "VALUES ('evil', 'x', '{}', '{}', now())",
    "UPDATE shopflow_candidates SET artefacts = NULL",
    "DELETE FROM shopflow_candidates",
    "CREATE TABLE public.planted (x int)",
    "CREATE SCHEMA planted",
    "SELECT setval('shopflow_events_id_seq', 1)",
]


def test_the_model_server_cannot_change_history(cluster: Cluster) -> None:
    with Ledger(cluster.url("pipeline", "shopflow")) as pipeline:
        pipeline.record_candidate(version="v1", family="baseline", metrics={})
        pipeline.promote("v1", actor="test", reason="first model")
    for statement in HISTORY_CHANGES:
        _denied(cluster.url("serve", "shopflow"), statement)  # InsufficientPrivilege
    with Ledger(cluster.url("serve", "shopflow")) as served:  # and nothing moved
        production = served.production()
        assert production is not None and production.version == "v1"
        assert [c.version for c in served.candidates()] == ["v1"]


def test_each_role_reaches_only_its_databases(cluster: Cluster) -> None:
    for role, database in (("serve", "airflow"), ("airflow", "shopflow"),
                           ("airflow", "feast"), ("pipeline", "airflow")):
        engine = sa.create_engine(cluster.url(role, database))
        try:
            with pytest.raises(sa.exc.OperationalError, match="permission denied"):
                engine.connect().close()
        finally:
            engine.dispose()


def test_the_pipeline_owns_the_warehouse_and_feast_reads_are_granted(cluster: Cluster) -> None:
    # the pipeline creates warehouse schemas (dbt) and Feast's registry tables (feast apply)
    pipeline = sa.create_engine(cluster.url("pipeline", "shopflow"))
    with pipeline.begin() as conn:
        conn.exec_driver_sql("CREATE SCHEMA marts")
        conn.exec_driver_sql("CREATE TABLE marts.user_features (user_id text)")
    pipeline.dispose()
    _denied(cluster.url("serve", "shopflow"), "SELECT * FROM marts.user_features")
    feast = sa.create_engine(cluster.url("pipeline", "feast"))
    with feast.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE feature_services (name text)")
        conn.exec_driver_sql("INSERT INTO feature_services VALUES ('propensity_v2')")
    feast.dispose()
    reader = sa.create_engine(cluster.url("serve", "feast"))
    with reader.connect() as conn:
        assert conn.exec_driver_sql("SELECT name FROM feature_services").scalar() == \
            "propensity_v2"
    reader.dispose()
    _denied(cluster.url("serve", "feast"), "INSERT INTO feature_services VALUES ('evil')")
    _denied(cluster.url("serve", "feast"), "DROP TABLE feature_services")
