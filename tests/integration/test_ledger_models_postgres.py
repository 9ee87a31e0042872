"""The model dimension on PostgreSQL: an old ledger schema is upgraded in place, and the
recommender's alias is created on its first promotion without touching propensity's."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from shopflow.ledger import Ledger

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def _old_tables(url: str, schema: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'create schema "{schema}"')
        conn.exec_driver_sql(
            f'create table "{schema}".shopflow_candidates (id serial primary key, '
            "version varchar(128) not null unique, family varchar(32) not null, "
            "metrics json not null, params json not null, feature_service varchar(128), "
            "data_window_start varchar(64), data_window_end varchar(64), "
            "data_fingerprint varchar(128), config_hash varchar(64), code_version varchar(64), "
            "run_id varchar(256), created_at timestamp not null)")
        conn.exec_driver_sql(
            f'create table "{schema}".shopflow_events (id serial primary key, '
            "kind varchar(32) not null, at timestamp not null, version varchar(128), "
            "previous_version varchar(128), reason text not null, actor varchar(128) not null, "
            "details json not null)")
        conn.exec_driver_sql(
            f'create table "{schema}".shopflow_aliases (alias varchar(64) primary key, '
            "version varchar(128), since timestamp, reason text, previous_version varchar(128), "
            "event_id integer)")
        conn.exec_driver_sql(
            f"insert into \"{schema}\".shopflow_candidates (version, family, metrics, params, "
            "created_at) values ('old-1', 'lightgbm', '{}', '{}', now())")
        conn.exec_driver_sql(
            f"insert into \"{schema}\".shopflow_events (kind, at, version, reason, actor, details) "
            "values ('promotion', now(), 'old-1', 'first', 'alice', '{}')")
        conn.exec_driver_sql(
            f"insert into \"{schema}\".shopflow_aliases (alias, version, since, reason) "
            "values ('production', 'old-1', now(), 'first')")
    engine.dispose()


def test_old_postgres_ledger_is_upgraded_and_holds_both_models(
        postgres_url: str, postgres_schema_prefix: str) -> None:
    schema = f"{postgres_schema_prefix}ledger"
    _old_tables(postgres_url, schema)
    with Ledger(postgres_url, schema=schema) as ledger:
        assert ledger.production().version == "old-1"
        assert ledger.candidate("old-1").model == "propensity"
        assert ledger.candidate("old-1").artefacts == {}  # column added: loads unverified
        ledger.record_candidate(version="r1", family="torch", metrics={"ndcg@10": 0.2},
                                model="recommender")
        assert ledger.promote("r1", actor="a", reason="first recommender",
                              model="recommender", expected_current=None) is None
        ledger.record_candidate(version="r2", family="lightgbm", metrics={"ndcg@10": 0.3},
                                model="recommender")
        ledger.promote("r2", actor="a", reason="better", model="recommender")
        ledger.record_rollback(to_version="r1", reason="bad", model="recommender")
        assert ledger.production(model="recommender").version == "r1"
        assert ledger.production().version == "old-1"
        status = ledger.status()
        assert status["production"]["version"] == "old-1"
        assert [e["kind"] for e in status["recommender"]["events"]] == [
            "promotion", "promotion", "rollback"]
