"""Point-in-time training sets from Feast's offline store.

A training row asks: what did we know about this user at this cutoff? Feast's join takes,
per entity row, the feature row with the latest ``cutoff_time`` at or before the row's
``event_timestamp`` and within the view's TTL (the lookback). Shopflow also asks Feast to
drop feature rows *created* after the entity row's timestamp
(``filter_by_created_timestamp=True``): a backfill that recomputed an old cutoff later
was not known at that cutoff, so using it would leak the future into training. Among
rows known in time, the latest ``created_at`` wins (a correction made before the cutoff).

Memory: Feast's ``to_df`` holds the Arrow result, its pandas copy and (to restore the
row order) a sorted copy at once, beside DuckDB's join. Here the entity rows go to Feast
in chunks of whole cutoffs (``features.retrieval_chunk_rows``), and each chunk's Arrow
result is written column by column into one preallocated float64 block, so at most one
chunk's join and result exist beside the output.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import numpy as np

from shopflow.errors import PermanentError
from shopflow.features.schema import LABELS_TABLE, USER_TABLE
from shopflow.privacy import id_hasher

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd
    from feast import FeatureService, FeatureStore

    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

ENTITY_TIMESTAMP = "event_timestamp"
_ROW = "__shopflow_row"


class EntityFrameError(PermanentError, ValueError):
    """The entity frame cannot be joined as given (missing columns, nulls, duplicates)."""


def _validate_entity_df(entity_df: pd.DataFrame, join_key: str,
                        hash_id: Callable[[str], str]) -> pd.DataFrame:
    """A typed copy of the entity frame: text ids, tz-aware UTC timestamps, row order.

    Errors name duplicated entities by pseudonym (``hash_id``): they reach the ledger.
    """
    import pandas as pd

    missing = [c for c in (join_key, ENTITY_TIMESTAMP) if c not in entity_df.columns]
    if missing:
        raise EntityFrameError(
            f"entity_df lacks column(s) {missing}; it needs {join_key}, {ENTITY_TIMESTAMP}"
            " and optionally label"
        )
    if _ROW in entity_df.columns:
        raise EntityFrameError(f"entity_df must not have a column named {_ROW}")
    frame = entity_df.copy()
    if frame[join_key].isna().any() or frame[ENTITY_TIMESTAMP].isna().any():
        raise EntityFrameError(
            f"entity_df has {int(frame[join_key].isna().sum())} null {join_key} and "
            f"{int(frame[ENTITY_TIMESTAMP].isna().sum())} null {ENTITY_TIMESTAMP} value(s)"
        )
    frame[join_key] = frame[join_key].astype(str)
    stamps = pd.to_datetime(frame[ENTITY_TIMESTAMP])
    frame[ENTITY_TIMESTAMP] = (
        stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps.dt.tz_convert("UTC")
    )
    duplicated = frame.duplicated([join_key, ENTITY_TIMESTAMP], keep=False)
    if duplicated.any():
        shown = frame.loc[duplicated, [join_key, ENTITY_TIMESTAMP]].drop_duplicates().head(5)
        examples = (
            shown.assign(**{join_key: shown[join_key].map(hash_id)})
            .astype(str)
            .agg(" @ ".join, axis=1)
            .tolist()
        )
        raise EntityFrameError(
            f"entity_df has {int(duplicated.sum())} rows sharing a ({join_key}, "
            f"{ENTITY_TIMESTAMP}) with another row, e.g. {examples}; each pair must be "
            "unique (a duplicate would be joined twice and weigh double in training)"
        )
    frame[_ROW] = range(len(frame))
    return frame


def build_training_set(
    settings: Settings,
    entity_df: pd.DataFrame,
    *,
    feature_service: str | None = None,
    store: FeatureStore | None = None,
) -> pd.DataFrame:
    """Join point-in-time-correct features onto labelled entity rows.

    Args:
        settings: the run's settings.
        entity_df: ``user_id, event_timestamp[, label, ...]``; extra columns pass through.
            Naive timestamps are taken as UTC.
        feature_service: Feast feature service; default ``settings.features.feature_service``.
        store: a FeatureStore to reuse; default a new one for ``settings``.

    Returns:
        One row per entity row, in the input order: the input columns (timestamps as
        tz-aware UTC) followed by the service's features (null where nothing was known
        within the lookback).

    Raises:
        EntityFrameError: missing columns, nulls, or duplicate (user_id, event_timestamp).
    """
    from shopflow.features.store import get_store

    started = time.perf_counter()
    join_key = USER_TABLE.join_key
    frame = _validate_entity_df(entity_df, join_key, id_hasher(settings))
    store = store or get_store(settings)
    _limit_offline_duckdb(settings)
    service_name = feature_service or settings.features.feature_service
    service = store.get_feature_service(service_name)
    feature_names = [
        feature.name for projection in service.feature_view_projections
        for feature in projection.features
    ]
    values = np.full((len(frame), len(feature_names)), np.nan, dtype=np.float64)
    chunks = _chunks(frame, settings.features.retrieval_chunk_rows)
    for rows in chunks:
        _retrieve_into(values, store, service, frame.iloc[rows].reset_index(drop=True),
                       feature_names)
    out = frame.drop(columns=[_ROW]).reset_index(drop=True)
    import pandas as pd

    features = pd.DataFrame(values, columns=feature_names, copy=False)
    out = pd.concat([out, features], axis=1, copy=False)
    seconds = time.perf_counter() - started
    logger.info(
        "training set via %s: %d rows x %d features in %d chunk(s), %.2fs (%.0f rows/s)",
        service_name, len(out), len(feature_names), len(chunks), seconds,
        len(out) / seconds if seconds else 0,
    )
    return out


def _limit_offline_duckdb(settings: Settings) -> None:
    """Put the run's DuckDB limits on the DuckDB Feast's offline store joins in.

    That is ibis' default backend (``ibis.get_backend()``, opened here if need be), an
    in-memory DuckDB that would otherwise take up to 80 % of the machine; with the
    warehouse's ``memory_limit`` and spill folder it spills like every other DuckDB of
    the run. Results do not depend on it.
    """
    import ibis

    from shopflow.duckdb_connect import apply_duckdb_settings

    apply_duckdb_settings(settings, ibis.get_backend().con)


def _chunks(frame: pd.DataFrame, max_rows: int) -> list[np.ndarray]:
    """Row positions per retrieval: whole cutoffs, at most ``max_rows`` (unless one
    cutoff alone is larger: a cutoff is never split, its rows share one join)."""
    import pandas as pd

    if len(frame) <= max_rows:
        return [np.arange(len(frame))]
    codes, _ = pd.factorize(frame[ENTITY_TIMESTAMP], sort=True)
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes)
    chunks: list[np.ndarray] = []
    start = taken = 0
    for size in sizes:
        if taken and taken + size > max_rows:
            chunks.append(np.sort(order[start:start + taken]))
            start, taken = start + taken, 0
        taken += int(size)
    chunks.append(np.sort(order[start:start + taken]))
    return chunks


def _retrieve_into(values: np.ndarray, store: FeatureStore, service: FeatureService,
                   chunk: pd.DataFrame, feature_names: list[str]) -> None:
    """Feast's point-in-time join of ``chunk``, written into ``values`` at its rows."""
    import pyarrow as pa
    import pyarrow.compute as pc

    job = store.get_historical_features(
        entity_df=chunk,
        features=service,
        filter_by_created_timestamp=True,
    )
    table = job.to_arrow()
    if table.num_rows != len(chunk):
        raise RuntimeError(
            f"Feast returned {table.num_rows} rows for {len(chunk)} entity rows; "
            "the point-in-time join must keep one row per entity row"
        )
    rows = table.column(_ROW).to_numpy()
    for j, name in enumerate(feature_names):
        column = pc.cast(table.column(name), pa.float64())
        values[rows, j] = column.to_numpy(zero_copy_only=False)


def load_label_entities(settings: Settings) -> pd.DataFrame:
    """The labelled entity rows from the published ``purchase_labels`` mart.

    Returns:
        ``user_id, event_timestamp (tz-aware UTC), label (int)``, one row per user and
        training cutoff: ready for :func:`build_training_set`.
    """
    import pandas as pd

    path = settings.data_dir / "marts" / f"{LABELS_TABLE}.parquet"
    if not path.is_file():
        raise FileNotFoundError(
            f"label mart {path} not found; publish the marts first (`shopflow transform`)"
        )
    labels = pd.read_parquet(path, columns=["user_id", "cutoff_time", "label"])
    stamps = pd.to_datetime(labels["cutoff_time"])
    stamps = stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps.dt.tz_convert("UTC")
    return pd.DataFrame(
        {
            "user_id": labels["user_id"].astype(str),
            ENTITY_TIMESTAMP: stamps,
            "label": labels["label"].astype("int64"),
        }
    )
