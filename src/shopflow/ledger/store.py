"""The model ledger: every candidate, decision, deployment and rollback, in one database.

SQLite (the default, ``settings.ledger_url``) or PostgreSQL (``SHOPFLOW_DATABASE_URL``).
Two DAG runs, the serving process and the CLI may write at once, so:

* SQLite runs in WAL mode with a busy timeout, and every write transaction starts with
  ``BEGIN IMMEDIATE`` (the write lock is taken up front, so two writers queue instead of
  failing to upgrade a read lock);
* on PostgreSQL the alias row is locked (``SELECT ... FOR UPDATE``) while it changes and
  table creation is serialised by an advisory lock.

Tables are created on first use; there is no migration step beyond one: a ledger created
before the model dimension gets its ``model`` columns on first use (old rows are the
propensity model's).

Every model Shopflow serves shares the ledger. Readers and writers take a keyword-only
``model`` (``"propensity"`` or ``"recommender"``); leaving it out means the ledger's own
``model`` (``Ledger(url, model=...)``, propensity by default), so callers written before
the dimension keep their meaning.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from shopflow.jsonable import jsonable
from shopflow.ledger.schema import (
    DEFAULT_MODEL,
    EVENT_KINDS,
    add_artefacts_column,
    add_bento_column,
    add_model_column,
    alias_for,
    build_tables,
    candidate_alias_for,
    lacks_artefacts_column,
    lacks_bento_column,
    missing_model_columns,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

logger = logging.getLogger(__name__)

_SQLITE_BUSY_MS = 30_000
_PG_INIT_LOCK = 0x5F0F_1ED6  # advisory lock id serialising table creation


class LedgerError(RuntimeError):
    """The ledger cannot do what was asked (unknown kind, bad version, unreachable DB)."""


class ProductionChangedError(LedgerError):
    """The production alias moved since the caller decided (another run promoted first)."""


class CandidateChangedError(LedgerError):
    """The candidate alias no longer names the version the caller checked."""


_ANY = object()  # "expected_current" not given: move the alias whatever holds it
ALL_MODELS = "*"  # model filter of readers: every model's rows


@dataclass(frozen=True)
class ProductionModel:
    """Who holds the production alias, and why."""

    version: str
    family: str | None
    metrics: dict[str, Any]
    since: datetime
    reason: str | None
    previous_version: str | None
    feature_service: str | None = None
    model: str = DEFAULT_MODEL


@dataclass(frozen=True)
class CandidateRecord:
    """One trained candidate as the ledger remembers it."""

    version: str
    family: str
    metrics: dict[str, Any]
    params: dict[str, Any]
    feature_service: str | None
    data_window: tuple[str | None, str | None]
    data_fingerprint: str | None
    config_hash: str | None
    code_version: str | None
    run_id: str | None
    created_at: datetime
    model: str = DEFAULT_MODEL
    artefacts: dict[str, str] = field(default_factory=dict)
    """Relative file path -> sha256 of the stored model's files, recorded at registration
    (empty for models registered before digests existed)."""
    bento: str | None = None
    """Tag of the Bento that carries this version (``shopflow package``), None: not packaged."""


@dataclass(frozen=True)
class LedgerEvent:
    """One decision, deployment or rollback."""

    id: int
    kind: str
    at: datetime
    version: str | None
    previous_version: str | None
    reason: str
    actor: str
    details: dict[str, Any] = field(default_factory=dict)
    model: str = DEFAULT_MODEL


def utcnow() -> datetime:
    """Naive UTC 'now' — the ledger stores naive UTC timestamps on every backend."""
    return datetime.now(UTC).replace(tzinfo=None)


def _naive_utc(value: datetime | None) -> datetime:
    if value is None:
        return utcnow()
    if value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def isoformat(value: datetime | None) -> str | None:
    """ISO 8601 with an explicit UTC offset, for JSON output."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC).isoformat()


class Ledger:
    """The ledger at a SQLAlchemy URL; tables are created on first use.

    Args:
        url: SQLAlchemy URL, usually ``settings.ledger_url``.
        schema: PostgreSQL schema to hold the tables (created if missing); None for the
            default search path. Lets tests share one database without colliding.
        model: the model a call means when it passes no ``model`` (``propensity``, or
            ``recommender`` for the recommendation engine's own code).
    """

    def __init__(self, url: str, *, schema: str | None = None,
                 model: str = DEFAULT_MODEL) -> None:
        _check_model(model)
        self.url = url
        self.schema = schema
        self.model = model
        self._engine: sa.Engine | None = None
        self._ready = False
        self._metadata, self._candidates, self._events, self._aliases = build_tables(schema)

    # ---- plumbing ----------------------------------------------------------------------
    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = self._create_engine()
        return self._engine

    def _create_engine(self) -> sa.Engine:
        if not self.is_sqlite:
            return sa.create_engine(self.url, pool_pre_ping=True)
        database = sa.make_url(self.url).database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(self.url, connect_args={"timeout": _SQLITE_BUSY_MS / 1000})

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # let SQLAlchemy's "begin" hook below emit BEGIN, not the sqlite3 driver
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_MS}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: sa.Connection) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine

    def close(self) -> None:
        """Release pooled connections (a forked process should build its own Ledger)."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        """A write transaction that holds the write lock from its first statement."""
        self._ensure_tables()
        with self.engine.connect() as conn:
            if self.is_sqlite:
                conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        self._ensure_tables()
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def _ensure_tables(self) -> None:
        if self._ready:
            return
        engine = self.engine
        with engine.connect() as conn:
            if self.is_sqlite:
                conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                if not self.is_sqlite:
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_INIT_LOCK)))
                    if self.schema:
                        conn.execute(sa.schema.CreateSchema(self.schema, if_not_exists=True))
                self._metadata.create_all(conn, checkfirst=True)
                for name in missing_model_columns(conn, self.schema):
                    logger.info("ledger: adding the model column to %s (old rows: %s)",
                                name, DEFAULT_MODEL)
                    add_model_column(conn, self._metadata.tables[_qualified(name, self.schema)])
                if lacks_artefacts_column(conn, self.schema):
                    logger.info("ledger: adding the artefacts column (model digests) to "
                                "shopflow_candidates; older models load unverified")
                    add_artefacts_column(conn, self._candidates)
                if lacks_bento_column(conn, self.schema):
                    logger.info("ledger: adding the bento column (packaged Bento tags) to "
                                "shopflow_candidates")
                    add_bento_column(conn, self._candidates)
                self._ensure_alias(conn, DEFAULT_MODEL)
        self._ready = True

    def _ensure_alias(self, conn: sa.Connection, model: str) -> None:
        """Insert ``model``'s (empty) alias row if it is missing, inside ``conn``'s write."""
        aliases = self._aliases
        name = alias_for(model)
        exists = conn.execute(sa.select(aliases.c.alias).where(aliases.c.alias == name)).first()
        if exists is None:
            conn.execute(sa.insert(aliases).values(alias=name))

    def _model(self, model: str | None) -> str:
        if model is None:
            return self.model
        _check_model(model)
        return model

    def _filter(self, query: Any, table: sa.Table, model: str | None) -> Any:
        """``query`` restricted to one model's rows (all rows for ``ALL_MODELS``)."""
        if model == ALL_MODELS:
            return query
        return query.where(table.c.model == self._model(model))

    # ---- writes ------------------------------------------------------------------------
    def record_candidate(
        self,
        *,
        version: str,
        family: str,
        metrics: Mapping[str, Any],
        params: Mapping[str, Any] | None = None,
        feature_service: str | None = None,
        data_window: tuple[Any, Any] | None = None,
        data_fingerprint: str | None = None,
        config_hash: str | None = None,
        code_version: str | None = None,
        run_id: str | None = None,
        created_at: datetime | None = None,
        model: str | None = None,
        artefacts: Mapping[str, str] | None = None,
    ) -> None:
        """Record (or update, when the version is already known) a trained candidate.

        ``artefacts`` (file -> sha256, :func:`shopflow.registry.digest.artefact_digests`)
        are what the model's files are checked against before they are loaded; an update
        without them keeps the recorded ones.
        """
        start, end = data_window if data_window is not None else (None, None)
        values = {
            "model": self._model(model),
            "family": family,
            "metrics": jsonable(dict(metrics)),
            "params": jsonable(dict(params or {})),
            "feature_service": feature_service,
            "data_window_start": None if start is None else str(jsonable(start)),
            "data_window_end": None if end is None else str(jsonable(end)),
            "data_fingerprint": data_fingerprint,
            "config_hash": config_hash,
            "code_version": code_version,
            "run_id": run_id,
        }
        if artefacts is not None:
            values["artefacts"] = dict(artefacts)
        table = self._candidates
        with self._write() as conn:
            if not self.is_sqlite:
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_INIT_LOCK + 1)))
            known = conn.execute(
                sa.select(table.c.id).where(table.c.version == version)
            ).first()
            if known is None:
                conn.execute(
                    sa.insert(table).values(
                        version=version, created_at=_naive_utc(created_at), **values
                    )
                )
            else:
                conn.execute(sa.update(table).where(table.c.version == version).values(**values))

    def update_candidate_metrics(self, version: str, metrics: Mapping[str, Any]) -> None:
        """Merge metrics into a recorded candidate (e.g. test-set metrics after evaluation)."""
        table = self._candidates
        with self._write() as conn:
            row = conn.execute(
                sa.select(table.c.metrics).where(table.c.version == version)
            ).first()
            if row is None:
                raise LedgerError(f"no candidate with version {version!r} in the ledger")
            merged = {**(row.metrics or {}), **jsonable(dict(metrics))}
            conn.execute(sa.update(table).where(table.c.version == version).values(metrics=merged))

    def update_candidate_artefacts(self, version: str, artefacts: Mapping[str, str]) -> bool:
        """Replace the recorded digests of a candidate whose files were rewritten on purpose
        (``shopflow forget`` erasing a shopper from a stored snapshot). Returns False, and
        records nothing, when the candidate is unknown or was registered without digests
        (it stays unverified, as before)."""
        table = self._candidates
        with self._write() as conn:
            row = conn.execute(
                sa.select(table.c.artefacts).where(table.c.version == version)
            ).first()
            if row is None or not row.artefacts:
                return False
            conn.execute(sa.update(table).where(table.c.version == version)
                         .values(artefacts=dict(artefacts)))
        return True

    def record_bento(self, version: str, tag: str) -> None:
        """Record ``tag``, the Bento that carries ``version``, beside the candidate (the
        latest packaging wins: a rebuilt Bento replaces the tag)."""
        table = self._candidates
        with self._write() as conn:
            done = conn.execute(sa.update(table).where(table.c.version == version)
                                .values(bento=tag))
            if done.rowcount == 0:
                raise LedgerError(f"no candidate with version {version!r} in the ledger")

    def record_event(
        self,
        *,
        kind: str,
        version: str | None,
        reason: str,
        actor: str = "shopflow",
        previous_version: str | None = None,
        details: Mapping[str, Any] | None = None,
        at: datetime | None = None,
        model: str | None = None,
    ) -> int:
        """Append a decision/deployment/rollback row; returns its id.

        Raises:
            LedgerError: ``kind`` is not one of promotion, rejection, deployment, rollback.
        """
        model = self._model(model)
        with self._write() as conn:
            return self._insert_event(
                conn,
                kind=kind,
                version=version,
                reason=reason,
                actor=actor,
                previous_version=previous_version,
                details=details,
                at=at,
                model=model,
            )

    def _insert_event(
        self,
        conn: sa.Connection,
        *,
        kind: str,
        version: str | None,
        reason: str,
        actor: str,
        previous_version: str | None,
        details: Mapping[str, Any] | None,
        at: datetime | None,
        model: str,
    ) -> int:
        if kind not in EVENT_KINDS:
            raise LedgerError(f"unknown ledger event kind {kind!r}; expected one of {EVENT_KINDS}")
        if not reason or not reason.strip():
            raise LedgerError(f"a {kind} event needs a reason")
        result = conn.execute(
            sa.insert(self._events)
            .values(
                kind=kind,
                at=_naive_utc(at),
                version=version,
                previous_version=previous_version,
                reason=reason,
                actor=actor,
                details=jsonable(dict(details or {})),
                model=model,
            )
            .returning(self._events.c.id)
        )
        return int(result.scalar_one())

    def _move_alias(
        self,
        version: str,
        *,
        kind: str,
        actor: str,
        reason: str,
        details: Mapping[str, Any] | None,
        expected_current: Any = _ANY,
        model: str | None = None,
    ) -> str | None:
        if not version:
            raise LedgerError("a version is required to move the production alias")
        model = self._model(model)
        alias = alias_for(model)
        aliases = self._aliases
        with self._write() as conn:
            if model != DEFAULT_MODEL:
                if not self.is_sqlite:  # two first promotions must not both insert the row
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_INIT_LOCK + 2)))
                self._ensure_alias(conn, model)
            current = conn.execute(
                sa.select(aliases.c.version)
                .where(aliases.c.alias == alias)
                .with_for_update()
            ).scalar_one_or_none()
            if expected_current is not _ANY and current != expected_current:
                raise ProductionChangedError(
                    f"{model} production is {current!r}, not {expected_current!r} as when the decision "
                    f"to {kind} {version!r} was made (another run moved it); decide again"
                )
            now = utcnow()
            event_id = self._insert_event(
                conn,
                kind=kind,
                version=version,
                reason=reason,
                actor=actor,
                previous_version=current,
                details=details,
                at=now,
                model=model,
            )
            conn.execute(
                sa.update(aliases)
                .where(aliases.c.alias == alias)
                .values(
                    version=version,
                    since=now,
                    reason=reason,
                    previous_version=current,
                    event_id=event_id,
                )
            )
        logger.info("ledger: %s %s %s -> %s (%s, by %s)", model, kind, current, version, reason,
                    actor)
        return current

    def promote(
        self,
        version: str,
        *,
        actor: str,
        reason: str,
        details: Mapping[str, Any] | None = None,
        expected_current: Any = _ANY,
        model: str | None = None,
    ) -> str | None:
        """Make ``version`` production and record the promotion; returns the replaced version.

        A forced promotion is a promotion with ``details={"forced": True, ...}``.

        Args:
            expected_current: when given (a version or None), promote only if production is
                still that version — the check and the move are one transaction, so two runs
                that both beat the same champion cannot silently overwrite each other.
            model: whose production alias moves (default: the ledger's model).

        Raises:
            ProductionChangedError: production is no longer ``expected_current``.
        """
        return self._move_alias(
            version, kind="promotion", actor=actor, reason=reason, details=details,
            expected_current=expected_current, model=model,
        )

    def record_rollback(
        self,
        *,
        to_version: str,
        reason: str,
        actor: str = "shopflow",
        details: Mapping[str, Any] | None = None,
        model: str | None = None,
        expected_current: Any = _ANY,
    ) -> str | None:
        """Point production back at ``to_version`` and record why; returns the version left.

        Args:
            expected_current: when given (a version or None), roll back only if production
                is still that version — the version the caller saw and judged. Check and
                move are one transaction, so two rollbacks of the same bad model (gate 4
                and a person, or a retried task) move production once; the second gets
                :class:`ProductionChangedError` instead of rolling back a good model.

        Raises:
            ProductionChangedError: production is no longer ``expected_current``.
        """
        return self._move_alias(
            to_version, kind="rollback", actor=actor, reason=reason, details=details,
            model=model, expected_current=expected_current,
        )

    # ---- deploy pending: the candidate alias --------------------------------------------
    def nominate(
        self,
        version: str,
        *,
        actor: str,
        reason: str,
        details: Mapping[str, Any] | None = None,
        expected_current: Any = _ANY,
        model: str | None = None,
    ) -> str | None:
        """Gate 2's promotion: ``version`` becomes the candidate; production does not move.

        Recorded as a ``promotion`` event with ``details.alias == "candidate"``. The
        service serves the candidate once it has loaded and checked it, and gate 3
        (:meth:`accept_candidate`) moves production; until then the deploy is pending.

        Args:
            expected_current: the production version gate 2 judged against (as in
                :meth:`promote`): checked in the same transaction.

        Returns:
            The production version at nomination (the one the candidate would replace).

        Raises:
            ProductionChangedError: production is no longer ``expected_current``.
        """
        model = self._model(model)
        with self._write() as conn:
            current = self._lock_alias(conn, alias_for(model), model)
            if expected_current is not _ANY and current != expected_current:
                raise ProductionChangedError(
                    f"{model} production is {current!r}, not {expected_current!r} as when the "
                    f"decision to promote {version!r} was made (another run moved it); decide again"
                )
            self._lock_alias(conn, candidate_alias_for(model), model)
            now = utcnow()
            event_id = self._insert_event(
                conn, kind="promotion", version=version, reason=reason, actor=actor,
                previous_version=current, details={**(details or {}), "alias": "candidate"},
                at=now, model=model,
            )
            self._set_alias(conn, candidate_alias_for(model), version, now=now, reason=reason,
                            previous=current, event_id=event_id)
        logger.info("ledger: %s candidate %s (production %s; deploy pending)", model, version,
                    current)
        return current

    def pending(self, *, model: str | None = None) -> ProductionModel | None:
        """The candidate waiting for gate 3 (deploy pending), or None.

        ``previous_version`` is the production version it was nominated against.
        """
        return self._alias_holder(candidate_alias_for(self._model(model)), self._model(model))

    def accept_candidate(
        self,
        version: str,
        *,
        actor: str,
        reason: str,
        details: Mapping[str, Any] | None = None,
        model: str | None = None,
    ) -> str | None:
        """Gate 3 passed: the candidate ``version`` takes production; the candidate clears.

        One transaction: the candidate must still be ``version`` (compare-and-set), the
        production alias moves with a ``deployment`` event (``details.alias ==
        "production"``) and the candidate alias empties. Returns the replaced version.

        Raises:
            CandidateChangedError: the candidate is no longer ``version``.
        """
        return self._settle_candidate(version, accept=True, actor=actor, reason=reason,
                                      details=details, model=model)

    def drop_candidate(
        self,
        version: str,
        *,
        actor: str,
        reason: str,
        details: Mapping[str, Any] | None = None,
        model: str | None = None,
    ) -> bool:
        """Gate 3 failed: empty the candidate alias if it still names ``version``.

        Recorded as a ``rejection`` (``details.alias == "candidate"``); production never
        moved, so there is nothing to roll back in the ledger, and the service goes back to
        production on its next poll. Returns False (and records nothing) when the
        candidate had already changed.
        """
        try:
            self._settle_candidate(version, accept=False, actor=actor, reason=reason,
                                   details=details, model=model)
        except CandidateChangedError:
            return False
        return True

    def _settle_candidate(self, version: str, *, accept: bool, actor: str, reason: str,
                          details: Mapping[str, Any] | None, model: str | None) -> str | None:
        """Gate 3's verdict on the candidate in one transaction; returns production before."""
        model = self._model(model)
        kind, alias = ("deployment", "production") if accept else ("rejection", "candidate")
        with self._write() as conn:
            current = self._lock_alias(conn, alias_for(model), model)
            candidate = self._lock_alias(conn, candidate_alias_for(model), model)
            if candidate != version:
                raise CandidateChangedError(
                    f"{model} candidate is {candidate!r}, not {version!r}: nothing done")
            now = utcnow()
            event_id = self._insert_event(
                conn, kind=kind, version=version, reason=reason, actor=actor,
                previous_version=current, details={**(details or {}), "alias": alias},
                at=now, model=model,
            )
            if accept:
                self._set_alias(conn, alias_for(model), version, now=now, reason=reason,
                                previous=current, event_id=event_id)
            self._set_alias(conn, candidate_alias_for(model), None, now=now, reason=None,
                            previous=version, event_id=event_id)
        logger.info("ledger: %s candidate %s %s (production was %s; %s, by %s)", model, version,
                    "deployed" if accept else "dropped", current, reason, actor)
        return current

    def _lock_alias(self, conn: sa.Connection, name: str, model: str) -> str | None:
        """The version in alias row ``name`` (created empty if missing), locked for update."""
        aliases = self._aliases
        if not self.is_sqlite:  # two first writers must not both insert the row
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_INIT_LOCK + 2)))
        exists = conn.execute(sa.select(aliases.c.alias).where(aliases.c.alias == name)).first()
        if exists is None:
            conn.execute(sa.insert(aliases).values(alias=name))
        version: str | None = conn.execute(
            sa.select(aliases.c.version).where(aliases.c.alias == name).with_for_update()
        ).scalar_one_or_none()
        return version

    def _set_alias(self, conn: sa.Connection, name: str, version: str | None, *,
                   now: datetime, reason: str | None, previous: str | None,
                   event_id: int) -> None:
        conn.execute(
            sa.update(self._aliases).where(self._aliases.c.alias == name).values(
                version=version, since=now, reason=reason, previous_version=previous,
                event_id=event_id)
        )

    # ---- reads -------------------------------------------------------------------------
    def production(self, *, model: str | None = None) -> ProductionModel | None:
        """The current production model, or None before the first promotion."""
        model = self._model(model)
        return self._alias_holder(alias_for(model), model)

    def _alias_holder(self, name: str, model: str) -> ProductionModel | None:
        """The model alias row ``name`` names, with its candidate record, or None."""
        aliases, candidates = self._aliases, self._candidates
        with self._read() as conn:
            row = conn.execute(
                sa.select(
                    aliases.c.version,
                    aliases.c.since,
                    aliases.c.reason,
                    aliases.c.previous_version,
                    candidates.c.family,
                    candidates.c.metrics,
                    candidates.c.feature_service,
                )
                .select_from(
                    aliases.outerjoin(candidates, candidates.c.version == aliases.c.version)
                )
                .where(aliases.c.alias == name)
            ).first()
        if row is None or row.version is None:
            return None
        return ProductionModel(
            version=row.version,
            family=row.family,
            metrics=dict(row.metrics or {}),
            since=row.since,
            reason=row.reason,
            previous_version=row.previous_version,
            feature_service=row.feature_service,
            model=model,
        )

    def production_history(self, *, model: str | None = None) -> list[LedgerEvent]:
        """Every event that moved ``model``'s production alias, oldest first.

        Rollbacks and promotions do, except a promotion to the candidate alias (gate 2's
        decision waiting for gate 3); a deployment does when it moved the candidate into
        production (``details.alias == "production"``).
        """
        return [e for e in self.events(model=self._model(model)) if _moved_production(e)]

    def production_at(self, when: datetime, *, model: str | None = None) -> str | None:
        """The version that held ``model``'s production alias at ``when`` (None before any)."""
        when = _naive_utc(when)
        holder: str | None = None
        for event in self.production_history(model=model):
            if event.at > when:
                break
            holder = event.version
        return holder

    def previous_production(self, *, exclude: set[str] | None = None,
                            model: str | None = None) -> str | None:
        """The version to roll back to: the latest earlier holder of production.

        Skips the current version, anything in ``exclude`` and any version production was
        already rolled back away from (so two rollbacks never bounce between bad models).
        """
        history = self.production_history(model=model)
        current = self.production(model=model)
        skip = set(exclude or ())
        if current is not None:
            skip.add(current.version)
        skip |= {e.previous_version for e in history if e.kind == "rollback" and e.previous_version}
        for event in reversed(history):
            if event.version and event.version not in skip:
                return event.version
        return None

    def candidate(self, version: str, *, model: str | None = ALL_MODELS
                  ) -> CandidateRecord | None:
        """One candidate by version (versions are unique across models)."""
        found = self.candidates(version=version, model=model)
        return found[0] if found else None

    def candidates(
        self, *, run_id: str | None = None, version: str | None = None, limit: int | None = None,
        model: str | None = None,
    ) -> list[CandidateRecord]:
        """Candidates of ``model`` (``ALL_MODELS``: every model's), newest first."""
        table = self._candidates
        query = self._filter(sa.select(table).order_by(table.c.id.desc()), table, model)
        if run_id is not None:
            query = query.where(table.c.run_id == run_id)
        if version is not None:
            query = query.where(table.c.version == version)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            CandidateRecord(
                version=r.version,
                family=r.family,
                metrics=dict(r.metrics or {}),
                params=dict(r.params or {}),
                feature_service=r.feature_service,
                data_window=(r.data_window_start, r.data_window_end),
                data_fingerprint=r.data_fingerprint,
                config_hash=r.config_hash,
                code_version=r.code_version,
                run_id=r.run_id,
                created_at=r.created_at,
                model=r.model,
                artefacts=dict(r.artefacts or {}),
                bento=r.bento,
            )
            for r in rows
        ]

    def events(
        self, *, kind: str | None = None, version: str | None = None, limit: int | None = None,
        model: str | None = None,
    ) -> list[LedgerEvent]:
        """Events of ``model`` (``ALL_MODELS``: every model's) oldest first.

        With ``limit``: the latest ``limit``, still oldest first.
        """
        table = self._events
        query = self._filter(sa.select(table).order_by(table.c.id.desc()), table, model)
        if kind is not None:
            query = query.where(table.c.kind == kind)
        if version is not None:
            query = query.where(table.c.version == version)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            LedgerEvent(
                id=r.id,
                kind=r.kind,
                at=r.at,
                version=r.version,
                previous_version=r.previous_version,
                reason=r.reason,
                actor=r.actor,
                details=dict(r.details or {}),
                model=r.model,
            )
            for r in reversed(rows)
        ]

    def models(self) -> list[str]:
        """Every model with a candidate, an event or a production version, default first."""
        found = {self.model}
        with self._read() as conn:
            for table in (self._candidates, self._events):
                found.update(conn.execute(sa.select(table.c.model).distinct()).scalars())
            for alias in conn.execute(
                sa.select(self._aliases.c.alias).where(self._aliases.c.version.is_not(None))
            ).scalars():
                found.add(DEFAULT_MODEL if ":" not in alias else alias.split(":", 1)[0])
        return [self.model, *sorted(found - {self.model})]

    def model_status(self, *, model: str | None = None, limit: int = 50) -> dict[str, Any]:
        """One model's ``{"production", "candidates", "events"}`` (the docs/DESIGN.md §4 shape),
        plus ``"pending"`` while a candidate waits for gate 3 (deploy pending)."""
        model = self._model(model)
        production = self.production(model=model)
        pending = self.pending(model=model)
        candidates = self.candidates(limit=limit, model=model)
        bento = None
        if production is not None:
            record = next((c for c in candidates if c.version == production.version), None) \
                or self.candidate(production.version, model=model)
            bento = record.bento if record is not None else None
        status: dict[str, Any] = {
            "production": None
            if production is None
            else {
                "version": production.version,
                "family": production.family,
                "metrics": production.metrics,
                "since": isoformat(production.since),
                "reason": production.reason,
                "previous_version": production.previous_version,
                "feature_service": production.feature_service,
                "bento": bento,
            },
            "candidates": [
                {
                    "version": c.version,
                    "family": c.family,
                    "metrics": c.metrics,
                    "feature_service": c.feature_service,
                    "run_id": c.run_id,
                    "created_at": isoformat(c.created_at),
                    "bento": c.bento,
                }
                for c in candidates
            ],
            "events": [
                {
                    "kind": e.kind,
                    "at": isoformat(e.at),
                    "version": e.version,
                    "previous_version": e.previous_version,
                    "reason": e.reason,
                    "actor": e.actor,
                    "details": e.details,
                }
                for e in self.events(limit=limit, model=model)
            ],
        }
        if pending is not None:
            status["pending"] = {
                "version": pending.version,
                "family": pending.family,
                "since": isoformat(pending.since),
                "reason": pending.reason,
                "production_version": pending.previous_version,
            }
        return status

    def status(self, *, limit: int = 50) -> dict[str, Any]:
        """The docs/DESIGN.md §4 object printed by ``shopflow status --json``.

        The ledger's model (propensity) fills the top level, as docs/DESIGN.md §4 fixes it; every
        other model with anything recorded gets a section of the same shape under its
        name (``"recommender": {"production", "candidates", "events"}``).
        """
        data = self.model_status(limit=limit)
        for model in self.models()[1:]:
            data[model] = self.model_status(model=model, limit=limit)
        return data


def _moved_production(event: LedgerEvent) -> bool:
    """Whether ``event`` moved the production alias (see :meth:`Ledger.production_history`)."""
    alias = event.details.get("alias")
    if event.kind == "rollback":
        return True
    if event.kind == "promotion":
        return alias != "candidate"
    return event.kind == "deployment" and alias == "production"


def _check_model(model: str) -> None:
    if (not isinstance(model, str) or not model.strip() or model == ALL_MODELS or ":" in model
            or len(model) > 64):
        raise LedgerError(f"invalid model name {model!r}: a short name without ':' "
                          "(e.g. 'propensity', 'recommender')")


def _qualified(name: str, schema: str | None) -> str:
    return f"{schema}.{name}" if schema else name
