"""docker/postgres/ledger.sql is the ledger's own DDL, so the deployment's tables are the
ones the code would create (a drifted copy would fail the first write, or worse, not)."""

from __future__ import annotations

from pathlib import Path

from shopflow.ledger.schema import postgres_ddl

DOCKER = Path(__file__).resolve().parents[2] / "docker" / "postgres"


def test_ledger_sql_is_the_generated_ddl() -> None:
    text = (DOCKER / "ledger.sql").read_text()
    statements = "".join(line + "\n" for line in text.splitlines()
                         if not line.startswith("--"))
    assert statements == postgres_ddl(), (
        "docker/postgres/ledger.sql is out of date: regenerate it with the command in its "
        "header")


def test_roles_sql_creates_the_ledger_as_the_pipeline_and_grants_the_server_no_writes() -> None:
    text = (DOCKER / "roles.sql").read_text()
    assert "\\ir ledger.sql" in text
    assert text.index('SET ROLE :"pipeline_role"') < text.index("\\ir ledger.sql")
    grants = [line for line in text.splitlines()
              if line.startswith("GRANT") and ':"serve_role"' in line]
    writes = [g for g in grants if any(w in g for w in ("UPDATE", "DELETE", "TRUNCATE",
                                                        " ALL ", "CREATE"))]
    assert writes == []
    assert 'GRANT INSERT ON shopflow_events TO :"serve_role";' in grants
