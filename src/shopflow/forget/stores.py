"""The stores that hold a shopper's rows, each with the function that removes them.

``shopflow forget`` walks :data:`USER_STORES` in order; a store added to Shopflow that
keeps per-user rows joins the erasure by adding one :class:`UserStore` here. Every remover
takes the settings and the :class:`Shopper` and returns ``{location: rows removed}`` (a
location is a table, a file relative to SHOPFLOW_HOME, or an online-store table/key), so
the forget record can say what went where. Removers must be idempotent (a second call
removes nothing and succeeds) and must leave every other shopper's rows as they were.

What the stores cover, and why each removal cannot break a later run:

- ``warehouse``: every base table with a ``user_id`` column in the raw, staging,
  intermediate and marts schemas (``raw.raw_events``, ``raw.quarantine``, the incremental
  ``staging.stg_shop__events``, every mart). Staging's watermark is the newest
  ``ingested_at`` it holds; if it moves back, the next run reconsiders raw rows from there
  and skips the event ids it already has, and the shopper's raw rows are gone too. Views
  hold no rows; marts are rebuilt from staging on every run.
- ``files``: every Parquet file under SHOPFLOW_HOME with a ``user_id`` column: published
  mart snapshots, Feast's offline files, saved training sets, monitoring references,
  quarantined batches and recommender snapshots in the model store (whose recorded
  digests are re-recorded, so the verified load still passes). Source files are input,
  not Shopflow's store: they are not rewritten (a rewritten file would be ingested again
  as a new batch); the shop's own export must drop the shopper too.
- ``online_store``: the shopper's entity in Feast's online store (SQLite rows of every
  user view; the Redis hash of the entity in this project).
- ``shadow_log``: the service's shadow log lines whose pseudonymized ``user`` is theirs.
- ``prediction_log``: the service's prediction log rows whose pseudonymized ``user`` is
  theirs (rows a running service still buffers, at most one flush interval, land after).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shopflow.privacy import USER_COLUMNS

if TYPE_CHECKING:
    import pyarrow as pa

    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

#: The warehouse layers (schemas before the prefix) that may hold per-user tables.
LAYERS = ("raw", "staging", "intermediate", "marts")


@dataclass(frozen=True)
class Shopper:
    """Who is forgotten: the raw id (to find rows) and its pseudonym (logs, the record)."""

    user_id: str
    token: str


Remover = Callable[["Settings", Shopper], dict[str, int]]


@dataclass(frozen=True)
class UserStore:
    """One place that holds shopper rows, and how to remove one shopper's.

    Attributes:
        name: short name, used as the key of the forget record.
        holds: what it holds, in words (``shopflow forget --help`` lists them).
        remove: ``(settings, shopper) -> {location: rows removed}``; idempotent.
    """

    name: str
    holds: str
    remove: Remover


# ---- warehouse -----------------------------------------------------------------------


def remove_from_warehouse(settings: Settings, shopper: Shopper) -> dict[str, int]:
    """Delete the shopper's rows from every per-user base table, in one transaction."""
    from shopflow.warehouse import connect

    if settings.warehouse.backend == "duckdb" and not settings.warehouse_path.is_file():
        return {}  # nothing ingested yet (and connecting would create the file)
    schemas = {f"s{i}": settings.warehouse.schema(layer) for i, layer in enumerate(LAYERS)}
    removed: dict[str, int] = {}
    with connect(settings) as wh:
        tables = wh.query_df(
            "select c.table_schema, c.table_name from information_schema.columns c "
            "join information_schema.tables t on t.table_schema = c.table_schema "
            "and t.table_name = c.table_name "
            f"where t.table_type = 'BASE TABLE' and c.column_name = :column "
            f"and c.table_schema in ({', '.join(':' + k for k in schemas)}) "
            "order by c.table_schema, c.table_name",
            {"column": "user_id", **schemas},
        )
        with wh.transaction():
            for schema, name in tables.itertuples(index=False):
                table = f"{schema}.{name}"
                where = "where cast(user_id as text) = :u"
                count = int(wh.scalar(f"select count(*) from {table} {where}",
                                      {"u": shopper.user_id}) or 0)
                if count:
                    wh.execute(f"delete from {table} {where}", {"u": shopper.user_id})
                removed[table] = count
    return removed


# ---- Parquet files -------------------------------------------------------------------


def _is_source(settings: Settings, path: Path, sources: set[Path]) -> bool:
    """Whether ``path`` is an input file, never rewritten (see the module doc)."""
    return path.resolve() in sources or path.is_relative_to(settings.data_dir / "synthetic")


def _source_files(settings: Settings) -> set[Path]:
    """Every file ingestion read (``raw.ingested_files``) and the configured source's files."""
    from shopflow.ingest.sources import IngestError, resolve_files
    from shopflow.warehouse import connect

    found: set[Path] = set()
    if settings.source.path:
        try:
            found.update(resolve_files(settings.source.path, config_dir=settings.config_dir))
        except IngestError:
            pass
    if settings.warehouse.backend == "postgres" or settings.warehouse_path.is_file():
        with connect(settings) as wh:
            files = wh.table("raw", "ingested_files")
            if wh.table_exists(files):
                names = wh.query_df(f"select distinct source_file from {files}")["source_file"]
                found.update(Path(str(n)).resolve() for n in names if n)
    return found


def _user_rows(table: pa.Table, user_id: str) -> pa.ChunkedArray | pa.Array | None:
    """A boolean mask of the rows whose user-id column equals ``user_id`` (None: no column)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    mask = None
    for column in sorted(USER_COLUMNS & set(table.column_names)):
        values = table[column]
        if pa.types.is_dictionary(values.type):
            values = values.cast(values.type.value_type)
        hit = pc.fill_null(pc.equal(pc.cast(values, pa.string()), user_id), False)
        mask = hit if mask is None else pc.or_(mask, hit)
    return mask


def remove_from_parquet(path: Path, user_id: str) -> int:
    """Rewrite one Parquet file without the shopper's rows (atomically); returns how many."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    columns = sorted(USER_COLUMNS & set(pq.read_schema(path).names))
    if not columns:
        return 0
    mask = _user_rows(pq.read_table(path, columns=columns), user_id)  # ids only: cheap
    removed = int(pc.sum(mask).as_py() or 0) if mask is not None else 0
    if removed:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.forget")
        try:
            pq.write_table(pq.read_table(path).filter(pc.invert(mask)), tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return removed


def _model_dir(settings: Settings, path: Path) -> Path | None:
    """The stored model folder (``.../models/<name>/<version>``) holding ``path``, if any."""
    try:
        parts = path.relative_to(settings.bentoml_home).parts
    except ValueError:
        return None
    if "models" not in parts:
        return None
    at = len(parts) - 1 - parts[::-1].index("models")
    if len(parts) < at + 4:
        return None
    return settings.bentoml_home.joinpath(*parts[: at + 3])


def _rerecord_digests(settings: Settings, model_dirs: set[Path]) -> None:
    """Re-record the digests of stored models whose files forget rewrote."""
    from shopflow.ledger import Ledger
    from shopflow.registry.digest import artefact_digests

    ledger = Ledger(settings.ledger_url)
    try:
        for folder in sorted(model_dirs):
            if ledger.update_candidate_artefacts(folder.name, artefact_digests(folder)):
                logger.info("forget: re-recorded the digests of model %s", folder.name)
    finally:
        ledger.close()


def remove_from_files(settings: Settings, shopper: Shopper) -> dict[str, int]:
    """Rewrite every Parquet file under SHOPFLOW_HOME that holds the shopper's rows."""
    home = settings.home_dir
    if not home.is_dir():
        return {}
    sources = _source_files(settings)
    removed: dict[str, int] = {}
    touched_models: set[Path] = set()
    for path in sorted(home.rglob("*.parquet")):
        if not path.is_file() or _is_source(settings, path, sources):
            continue
        count = remove_from_parquet(path, shopper.user_id)
        if count:
            removed[path.relative_to(home).as_posix()] = count
            model_dir = _model_dir(settings, path)
            if model_dir is not None:
                touched_models.add(model_dir)
    if touched_models:
        _rerecord_digests(settings, touched_models)
    return removed


# ---- Feast online store --------------------------------------------------------------


def remove_from_online_store(settings: Settings, shopper: Shopper) -> dict[str, int]:
    """Delete the shopper's entity from the online store (SQLite rows, or the Redis hash)."""
    from shopflow import internals
    from shopflow.features.online_write import encode_entity_keys
    from shopflow.features.store import get_store, repo_config

    entity_key = encode_entity_keys("user_id", [shopper.user_id])[0]
    if settings.features.online_store == "sqlite":
        if not settings.feast_dir.is_dir():
            return {}
        path = Path(internals.sqlite_online_path(repo_config(settings)))
        return _remove_from_sqlite(path, entity_key)
    client = internals.feast_redis_client(get_store(settings))
    try:
        (key,) = internals.redis_hash_keys([entity_key], settings.features.project)
        deleted: Any = client.delete(key)  # redis-py types it for its async client too
        return {f"redis:{settings.features.project}": int(deleted)}
    finally:
        client.close()


def _remove_from_sqlite(path: Path, entity_key: bytes) -> dict[str, int]:
    """Delete one entity's values from every Feast table of a SQLite online store."""
    import sqlite3

    from shopflow.features.online_write import quote_identifier

    if not path.is_file():
        return {}
    removed: dict[str, int] = {}
    conn = sqlite3.connect(path, timeout=60.0)
    try:
        with conn:
            tables = [r[0] for r in conn.execute(
                "select name from sqlite_master where type = 'table' order by name")]
            for table in tables:
                quoted = quote_identifier(table)
                columns = {r[1] for r in conn.execute(f"pragma table_info({quoted})")}
                if "entity_key" in columns:
                    cursor = conn.execute(f"delete from {quoted} where entity_key = ?",
                                          (entity_key,))
                    removed[f"sqlite:{table}"] = cursor.rowcount
    finally:
        conn.close()
    return removed


# ---- JSON-lines logs with pseudonymized users ----------------------------------------


def _remove_from_logs(settings: Settings, paths: list[Path], token: str) -> dict[str, int]:
    from shopflow.serving.jsonl_log import remove_user_lines

    home = settings.home_dir
    removed = {path.relative_to(home).as_posix(): remove_user_lines(path, token)
               for path in paths}
    return {k: v for k, v in removed.items() if v}


def remove_from_shadow_log(settings: Settings, shopper: Shopper) -> dict[str, int]:
    """Drop the shopper's lines from the shadow log's day files."""
    from shopflow.serving.shadow import shadow_dir, shadow_files

    return _remove_from_logs(settings, shadow_files(shadow_dir(settings.reports_dir)),
                             shopper.token)


def remove_from_prediction_log(settings: Settings, shopper: Shopper) -> dict[str, int]:
    """Drop the shopper's rows from the prediction log's files."""
    from shopflow.serving.prediction_log import prediction_log_files

    return _remove_from_logs(settings, prediction_log_files(settings.home_dir), shopper.token)


#: Every store holding shopper rows, in the order ``shopflow forget`` erases them (the
#: sources of derived data first). A new store of per-user rows adds its entry here.
USER_STORES: list[UserStore] = [
    UserStore("warehouse", "raw and staged events, quarantined raw rows, marts",
              remove_from_warehouse),
    UserStore("files", "Parquet files in SHOPFLOW_HOME: published marts, Feast offline "
              "files, training sets, monitoring references, quarantined batches, "
              "recommender snapshots", remove_from_files),
    UserStore("online_store", "Feast online store (SQLite or Redis)", remove_from_online_store),
    UserStore("shadow_log", "the service's shadow log (pseudonymized users)",
              remove_from_shadow_log),
    UserStore("prediction_log", "the service's prediction log (pseudonymized users)",
              remove_from_prediction_log),
]
