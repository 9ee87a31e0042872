"""Cross-process locks around the steps that replace shared state.

``feature_state``: publish, export and materialize; ``warehouse_build``: the dbt layers.

The training DAG (daily) and the features DAG (hourly) both export the marts for Feast
and load the online store, and two training runs may overlap (a manual trigger during a
scheduled one). Unserialised, run A can publish marts, run B publish newer ones, and A's
materialization, having read the watermark before B moved it, write older values over
B's. Holding :func:`feature_state_lock` around each of those steps makes them happen one
at a time, each seeing what the previous one left. Two dbt builds of one warehouse
collide the same way (both rename ``<model>__dbt_tmp`` into place), so each dbt layer
holds :func:`state_lock` ``warehouse_build``.

The lock follows the warehouse: on PostgreSQL a session-level advisory lock (every
worker of a distributed Airflow sees it), keyed by the schema prefix so warehouses that
share a database do not block each other; on DuckDB, which allows one host anyway, an
``flock`` on ``SHOPFLOW_HOME/locks/feature_state.lock``. Both are released by the
operating system or the database when the holder dies, so a killed run never leaves the
next one waiting. The lock is not re-entrant: take it once per step, never nested.
"""

from __future__ import annotations

import hashlib
import logging
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator
    from contextlib import AbstractContextManager

    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

FEATURE_STATE = "feature_state"
WAREHOUSE_BUILD = "warehouse_build"


def advisory_key(name: str, scope: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock`` from a lock name and scope."""
    digest = hashlib.sha256(f"shopflow:{name}:{scope}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def state_lock(settings: Settings, name: str, *, what: str = "") -> Iterator[None]:
    """Hold the lock ``name`` for the ``with`` block (waits while another process has it)."""
    started = time.perf_counter()
    holder = _postgres_lock if settings.warehouse.backend == "postgres" else _file_lock
    with holder(settings, name):
        waited = time.perf_counter() - started
        if waited >= 1.0:
            logger.info("%s: waited %.1fs for the %s lock", what or "step", waited, name)
        yield


def feature_state_lock(settings: Settings, *, what: str = "") -> AbstractContextManager[None]:
    """The lock around publish, export and materialize (see the module docstring)."""
    return state_lock(settings, FEATURE_STATE, what=what)


@contextmanager
def _file_lock(settings: Settings, name: str) -> Iterator[None]:
    import fcntl

    folder = settings.home_dir / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{name}.lock").open("a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextmanager
def _postgres_lock(settings: Settings, name: str) -> Iterator[None]:
    import sqlalchemy as sa

    key = advisory_key(name, settings.warehouse.schema_prefix)
    engine = sa.create_engine(settings.warehouse.postgres_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select pg_advisory_lock(:k)"), {"k": key})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(sa.text("select pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
    finally:
        engine.dispose()
