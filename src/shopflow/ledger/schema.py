"""The ledger's tables (SQLAlchemy Core), built per schema so tests can isolate them.

Three tables answer "which model served at time T and why":

* ``shopflow_candidates`` — every trained candidate with its metrics and lineage,
* ``shopflow_events`` — append-only decisions: promotion, rejection, deployment, rollback,
* ``shopflow_aliases`` — the current holder of the ``production`` alias (one row).
"""

from __future__ import annotations

import sqlalchemy as sa

EVENT_KINDS = ("promotion", "rejection", "deployment", "rollback")
PRODUCTION_ALIAS = "production"


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
