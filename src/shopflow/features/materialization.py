"""Incremental, idempotent materialization of the offline features into the online store.

Each run covers a window of cutoffs ``[start, end]``. By default ``start`` is the view's
watermark (the latest cutoff already materialized, kept in Feast's registry as the
view's materialization interval) minus ``features.materialize_overlap``, so rows that
arrive late for recent cutoffs are picked up; ``end`` defaults to now. The first run of a
view covers all of history.

Within the window DuckDB reads the offline Parquet file and keeps the latest row per
entity (highest ``cutoff_time``, then ``created_at``); only those rows go to the online
store, through the bulk writers of :mod:`shopflow.features.online_write`. Writes never
replace a stored value that is newer than the incoming one (SQLite checks every row in
its upsert; on Redis the stored timestamps are read first, in the same batch), so
re-running a window, or an older one, leaves the online store as it is: the run is
idempotent. Materializations hold the feature-state lock (:mod:`shopflow.locks`), so the
read-then-write on Redis cannot interleave with another run's.

Known limit: a row that arrives later than the overlap for a cutoff before the window is
not picked up by the incremental run; materialize an explicit ``start`` to backfill it.
"""

from __future__ import annotations

import logging
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from shopflow.faults import crash_point
from shopflow.features.schema import (
    CREATED_FIELD,
    TIMESTAMP_FIELD,
    FeatureTable,
    feature_tables,
)
from shopflow.locks import feature_state_lock

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from feast import FeatureStore, FeatureView

    from shopflow.features.online_write import FeatureRows, WriteStats
    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

READ_BATCH_ROWS = 200_000


@dataclass(frozen=True)
class ViewMaterialization:
    """One feature view's materialization run."""

    view: str
    start: datetime | None
    """Window start (UTC, inclusive); None = all of history."""
    end: datetime
    """Window end (UTC, inclusive)."""
    entities: int
    """Entities with a row in the window (their latest row is what gets written)."""
    written: int
    skipped_newer: int
    seconds: float
    previous_watermark: datetime | None
    watermark: datetime | None
    """Latest cutoff materialized so far: the next run starts from here minus the overlap."""

    @property
    def rows_per_second(self) -> float:
        return self.entities / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class MaterializeResult:
    """A materialization run over every feature view."""

    online_store: str
    views: list[ViewMaterialization] = field(default_factory=list)

    @property
    def entities(self) -> int:
        return sum(v.entities for v in self.views)

    @property
    def seconds(self) -> float:
        return sum(v.seconds for v in self.views)

    @property
    def rows_per_second(self) -> float:
        return self.entities / self.seconds if self.seconds else 0.0

    def by_view(self, name: str) -> ViewMaterialization:
        for view in self.views:
            if view.view == name:
                return view
        raise KeyError(name)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def get_watermark(store: FeatureStore, view_name: str) -> datetime | None:
    """The latest cutoff materialized for a view (from the registry, never cached)."""
    view = store.registry.get_feature_view(view_name, store.project, allow_cache=False)
    return _utc(view.most_recent_end_time)


class _Progress:
    """Periodic log lines with entities/s, so long runs show they are alive."""

    def __init__(self, label: str, total: int, every_seconds: float = 5.0) -> None:
        self.label, self.total, self.every = label, total, every_seconds
        self.done = 0
        self.started = self.last = time.perf_counter()

    def __call__(self, count: int) -> None:
        self.done += count
        now = time.perf_counter()
        if now - self.last >= self.every or self.done >= self.total:
            self.last = now
            rate = self.done / (now - self.started) if now > self.started else 0.0
            logger.info(
                "materialize %s: %d/%d entities (%.0f/s)", self.label, self.done, self.total, rate
            )


def read_latest_rows(
    settings: Settings,
    table: FeatureTable,
    *,
    start: datetime | None,
    end: datetime,
    batch_rows: int = READ_BATCH_ROWS,
) -> tuple[int, Iterable[FeatureRows]]:
    """The latest offline row per entity with ``start <= cutoff_time <= end``.

    Returns:
        The number of entities and an iterator of column batches.
    """
    from shopflow.duckdb_connect import connect_duckdb
    from shopflow.features.online_write import FeatureRows

    path = table.offline_path(settings)
    if not path.is_file():
        raise FileNotFoundError(
            f"offline features {path} not found; run shopflow.features.export_marts first "
            "(`shopflow features apply` exports the marts)"
        )
    key = table.join_key
    names = table.feature_names
    where = [f"{TIMESTAMP_FIELD} <= $end"]
    params: dict[str, object] = {"end": _naive(end)}
    if start is not None:
        where.append(f"{TIMESTAMP_FIELD} >= $start")
        params["start"] = _naive(start)
    conn = connect_duckdb(settings)
    path_sql = "'" + str(path).replace("'", "''") + "'"
    conn.execute(
        f"""
        CREATE TEMP TABLE latest AS
        SELECT {key}, {TIMESTAMP_FIELD}, {CREATED_FIELD}, {", ".join(names)}
        FROM read_parquet({path_sql})
        WHERE {" AND ".join(where)}
        QUALIFY row_number() OVER (
            PARTITION BY {key} ORDER BY {TIMESTAMP_FIELD} DESC, {CREATED_FIELD} DESC) = 1
        """,
        params,
    )
    total = conn.execute("SELECT count(*) FROM latest").fetchall()[0][0]

    def batches() -> Iterable[FeatureRows]:
        try:
            # Feast's serialized key is a constant prefix, the id's length, then the id:
            # in that order SQLite's B-tree inserts all land at the right edge.
            reader = conn.sql(
                f"SELECT * FROM latest ORDER BY strlen({key}), {key}"
            ).to_arrow_reader(
                batch_rows
            )
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                yield FeatureRows(
                    ids=batch.column(0).to_pylist(),
                    values=np.column_stack(
                        [
                            batch.column(3 + j).to_numpy(zero_copy_only=False).astype("float64")
                            for j in range(len(names))
                        ]
                    ),
                    feature_names=list(names),
                    event_ts=batch.column(1).to_numpy().astype("datetime64[us]"),
                    created_ts=batch.column(2).to_numpy().astype("datetime64[us]"),
                )
        finally:
            conn.close()

    return int(total), batches()


def _writer(settings: Settings) -> Callable[..., WriteStats]:
    from shopflow.features import online_write

    # The bulk writers know SQLite's and Redis's layouts; any other store goes through Feast.
    bulk: dict[str, Callable[..., WriteStats]] = {
        "redis": online_write.write_redis, "sqlite": online_write.write_sqlite}
    return bulk.get(settings.features.online_store, online_write.write_generic)


def _load_session(
    settings: Settings, store: FeatureStore, view: FeatureView
) -> AbstractContextManager[None]:
    """What surrounds one view's writes: on SQLite, a first load builds its index last."""
    from shopflow.features import online_write

    if settings.features.online_store == "sqlite":
        return online_write.sqlite_indexes_deferred(store, view)
    return nullcontext()


def materialize_view(
    settings: Settings,
    store: FeatureStore,
    table: FeatureTable,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> ViewMaterialization:
    """Materialize one view's window (see the module docstring) and move its watermark."""
    from shopflow.features.store import require_applied

    started = time.perf_counter()
    require_applied(store, table.view_name)
    view: FeatureView = store.get_feature_view(table.view_name)
    previous = get_watermark(store, table.view_name)
    end = _utc(end) or datetime.now(UTC)
    if start is None and previous is not None:
        start = previous - settings.features.materialize_overlap
    start = _utc(start)
    if start is not None and start > end:
        raise ValueError(f"materialize window starts after it ends: {start} > {end}")
    total, batches = read_latest_rows(settings, table, start=start, end=end)
    logger.info(
        "materialize %s: window [%s, %s], %d entities to write (watermark was %s)",
        table.view_name, start or "beginning", end, total, previous,
    )
    write = _writer(settings)
    progress = _Progress(table.view_name, total)
    written = skipped = 0
    latest: np.datetime64 | None = None
    with _load_session(settings, store, view):
        for rows in batches:
            # always checked: another run (an older mart set, another home on the same
            # Redis) may have stored newer values even when this window ends after the
            # watermark
            stats = write(store, view, rows, progress=progress, check_newer=True)
            written += stats.written
            skipped += stats.skipped_newer
            batch_max = rows.event_ts.max()
            latest = batch_max if latest is None or batch_max > latest else latest
    watermark = previous
    if latest is not None:
        latest_dt = datetime.fromtimestamp(
            int(latest.astype("datetime64[us]").astype("int64")) / 1_000_000, tz=UTC
        )
        if previous is None or latest_dt > previous:
            watermark = latest_dt
        if watermark is not None and watermark != previous:
            store.registry.apply_materialization(
                view, store.project, start or datetime.fromtimestamp(0, tz=UTC), watermark
            )
    seconds = time.perf_counter() - started
    result = ViewMaterialization(
        view=table.view_name,
        start=start,
        end=end,
        entities=total,
        written=written,
        skipped_newer=skipped,
        seconds=seconds,
        previous_watermark=previous,
        watermark=watermark,
    )
    logger.info(
        "materialized %s: %d entities (%d written, %d kept newer) in %.2fs = %.0f entities/s; "
        "watermark %s",
        table.view_name, total, written, skipped, seconds, result.rows_per_second, watermark,
    )
    return result


def materialize(
    settings: Settings,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    tables: Iterable[FeatureTable] | None = None,
    store: FeatureStore | None = None,
) -> MaterializeResult:
    """Load the latest offline features of the window into the online store.

    Args:
        settings: the run's settings (online store, overlap).
        start: window start (UTC; naive = UTC); default watermark - overlap, or all history.
        end: window end; default now.
        tables: which feature tables; default all of the run's (``feature_tables(settings)``;
            a legacy table never exported is skipped with a warning).
        store: a FeatureStore to reuse.

    Returns:
        Per view: window, entities, written/skipped counts, speed and the new watermark.
    """
    from shopflow.features.store import get_store

    chosen = feature_tables(settings) if tables is None else tables
    views = []
    # watermarks are read and moved, and values written, by one materialization at a
    # time: another run's older window cannot land after a newer one (shopflow.locks)
    with feature_state_lock(settings, what="materialize"):
        store = store or get_store(settings)
        for table in chosen:
            if table.legacy and not table.offline_path(settings).is_file():
                # never exported (its mart was not published): nothing to load
                logger.warning("materialize %s: no offline file %s, skipped",
                               table.view_name, table.offline_path(settings))
                continue
            views.append(materialize_view(settings, store, table, start=start, end=end))
            crash_point("inside:feast_materialize")  # one view loaded, others not yet
    return MaterializeResult(online_store=settings.features.online_store, views=views)
