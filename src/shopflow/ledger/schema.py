"""The ledger's tables (SQLAlchemy Core), built per schema so tests can isolate them.

Three tables answer "which model served at time T and why":

* ``shopflow_candidates`` — every trained candidate with its metrics and lineage,
* ``shopflow_events`` — append-only decisions: promotion, rejection, deployment, rollback,
* ``shopflow_aliases`` — the current holder of each model's ``production`` alias, and the
  ``candidate`` that gate 2 promoted and gate 3 has not passed yet (deploy pending).

One ledger holds every kind of model Shopflow serves (the purchase-propensity model and
the recommender): candidates and events carry a ``model`` column, and each model has its
own production alias row (``production`` for propensity, ``<model>:production`` for the
others), so promoting a recommender never moves, or rolls back, the propensity model.
Ledgers created before the column existed get it on first use, with ``propensity`` as the
value of every old row (see :func:`missing_model_columns`).
"""

from __future__ import annotations

import sqlalchemy as sa

from shopflow.contract import PROPENSITY_MODEL

EVENT_KINDS = ("promotion", "rejection", "deployment", "rollback")
PRODUCTION_ALIAS = "production"
#: The alias of a model gate 2 promoted that waits for gate 3 (the service's check) before
#: it may hold ``production``; empty (NULL version) when nothing is pending.
CANDIDATE_ALIAS = "candidate"
#: The model every caller means unless it says otherwise (the docs/DESIGN.md §4 status object).
DEFAULT_MODEL = PROPENSITY_MODEL
MODEL_COLUMN_TABLES = ("shopflow_candidates", "shopflow_events")


def alias_for(model: str) -> str:
    """The alias row holding ``model``'s production version.

    The propensity model keeps the historical name ``production``, so ledgers written
    before the model dimension keep their production model.
    """
    return PRODUCTION_ALIAS if model == DEFAULT_MODEL else f"{model}:{PRODUCTION_ALIAS}"


def candidate_alias_for(model: str) -> str:
    """The alias row holding ``model``'s deploy-pending candidate (see :data:`CANDIDATE_ALIAS`)."""
    return CANDIDATE_ALIAS if model == DEFAULT_MODEL else f"{model}:{CANDIDATE_ALIAS}"


def _model_column() -> sa.Column[str]:
    return sa.Column("model", sa.String(64), nullable=False, server_default=DEFAULT_MODEL,
                     index=True)


def build_tables(schema: str | None = None) -> tuple[sa.MetaData, sa.Table, sa.Table, sa.Table]:
    """Create the table objects (not the tables) in ``schema``.

    A fresh :class:`~sqlalchemy.MetaData` per call keeps two ledgers on different schemas
    (e.g. parallel tests on one PostgreSQL database) from sharing table objects.

    Returns:
        ``(metadata, candidates, events, aliases)``.
    """
    metadata = sa.MetaData(schema=schema)
    candidates = sa.Table(
        "shopflow_candidates",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("version", sa.String(128), nullable=False, unique=True),
        sa.Column("family", sa.String(32), nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("feature_service", sa.String(128), nullable=True),
        sa.Column("data_window_start", sa.String(64), nullable=True),
        sa.Column("data_window_end", sa.String(64), nullable=True),
        sa.Column("data_fingerprint", sa.String(128), nullable=True),
        sa.Column("config_hash", sa.String(64), nullable=True),
        sa.Column("code_version", sa.String(64), nullable=True),
        sa.Column("run_id", sa.String(256), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        _model_column(),
        # relative file path -> sha256 of the stored model's files (registry.digest)
        sa.Column("artefacts", sa.JSON, nullable=True),
        # tag of the Bento that carries this version (shopflow.serving.bento), once packaged
        sa.Column("bento", sa.String(256), nullable=True),
    )
    events = sa.Table(
        "shopflow_events",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("version", sa.String(128), nullable=True),
        sa.Column("previous_version", sa.String(128), nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        _model_column(),
        sa.CheckConstraint(
            "kind in ('promotion', 'rejection', 'deployment', 'rollback')",
            name="shopflow_events_kind",
        ),
    )
    aliases = sa.Table(
        "shopflow_aliases",
        metadata,
        sa.Column("alias", sa.String(64), primary_key=True),
        sa.Column("version", sa.String(128), nullable=True),
        sa.Column("since", sa.DateTime, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("previous_version", sa.String(128), nullable=True),
        sa.Column("event_id", sa.Integer, nullable=True),
    )
    return metadata, candidates, events, aliases


def missing_model_columns(conn: sa.Connection, schema: str | None) -> list[str]:
    """Tables of a ledger created before the model dimension (they lack ``model``)."""
    inspector = sa.inspect(conn)
    missing = []
    for name in MODEL_COLUMN_TABLES:
        if not inspector.has_table(name, schema=schema):
            continue
        columns = {c["name"] for c in inspector.get_columns(name, schema=schema)}
        if "model" not in columns:
            missing.append(name)
    return missing


def lacks_artefacts_column(conn: sa.Connection, schema: str | None) -> bool:
    """Whether the candidates table predates model digests (no ``artefacts`` column)."""
    inspector = sa.inspect(conn)
    if not inspector.has_table("shopflow_candidates", schema=schema):
        return False
    columns = {c["name"] for c in inspector.get_columns("shopflow_candidates", schema=schema)}
    return "artefacts" not in columns


def add_artefacts_column(conn: sa.Connection, table: sa.Table) -> None:
    """``ALTER TABLE ... ADD COLUMN artefacts`` (NULL for old rows: loaded unverified)."""
    name = conn.dialect.identifier_preparer.format_table(table)
    conn.exec_driver_sql(f"ALTER TABLE {name} ADD COLUMN artefacts JSON")


def lacks_bento_column(conn: sa.Connection, schema: str | None) -> bool:
    """Whether the candidates table predates Bento packaging (no ``bento`` column)."""
    inspector = sa.inspect(conn)
    if not inspector.has_table("shopflow_candidates", schema=schema):
        return False
    columns = {c["name"] for c in inspector.get_columns("shopflow_candidates", schema=schema)}
    return "bento" not in columns


def add_bento_column(conn: sa.Connection, table: sa.Table) -> None:
    """``ALTER TABLE ... ADD COLUMN bento`` (NULL for old rows: never packaged)."""
    name = conn.dialect.identifier_preparer.format_table(table)
    conn.exec_driver_sql(f"ALTER TABLE {name} ADD COLUMN bento VARCHAR(256)")


def add_model_column(conn: sa.Connection, table: sa.Table) -> None:
    """``ALTER TABLE ... ADD COLUMN model`` with the default, so old rows are propensity's.

    SQLite and PostgreSQL both fill existing rows with the column default.
    """
    name = conn.dialect.identifier_preparer.format_table(table)
    conn.exec_driver_sql(
        f"ALTER TABLE {name} ADD COLUMN model VARCHAR(64) NOT NULL DEFAULT '{DEFAULT_MODEL}'"
    )
    for index in table.indexes:
        if "model" in index.columns:
            index.create(conn, checkfirst=True)


def postgres_ddl() -> str:
    """The ledger's tables as PostgreSQL DDL, exactly as :class:`~shopflow.ledger.Ledger`
    would create them.

    The containerised deployment creates the tables up front (``docker/postgres/ledger.sql``,
    owned by the pipeline's role) so that the model server's role can be granted read and
    append rights on tables that exist before either process starts; a unit test keeps that
    file equal to this text.
    """
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateIndex, CreateTable

    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    metadata, *_ = build_tables()
    statements = []
    for table in metadata.sorted_tables:
        statements.append(str(CreateTable(table).compile(dialect=dialect)).strip())
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            statements.append(str(CreateIndex(index).compile(dialect=dialect)).strip())
    return "".join(f"{statement};\n" for statement in statements)
