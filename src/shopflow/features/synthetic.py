"""Small, explicit mart snapshots for tests, benchmarks and demos of the feature store.

The real marts come from dbt (``shopflow.transform.publish_marts``). These helpers write
Parquet files with the same columns to the same place, so the feature store can be
exercised without a warehouse; values are whatever the caller says (or seeded random).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shopflow.features.schema import ITEM_TABLE, LABELS_TABLE, USER_TABLE, FeatureTable

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path

    import pandas as pd

    from shopflow.settings import Settings


def feature_row(
    table: FeatureTable,
    entity_id: str,
    cutoff: str,
    base: float,
    *,
    created_at: str | None = None,
    overrides: Mapping[str, float | None] | None = None,
) -> dict[str, object]:
    """One mart row whose features are ``base + i/100`` (feature i), so values identify rows."""
    import pandas as pd

    row: dict[str, object] = {table.join_key: entity_id, "cutoff_time": pd.Timestamp(cutoff)}
    for index, name in enumerate(table.feature_names):
        row[name] = base + index / 100
    for name, value in (overrides or {}).items():
        row[name] = value
    if created_at is not None:
        row["created_at"] = pd.Timestamp(created_at)
    return row


def write_mart(settings: Settings, table: FeatureTable | str, rows: Iterable[Mapping[str, object]] | pd.DataFrame) -> Path:
    """Write a mart snapshot where ``publish_marts`` would (``data_dir/marts``)."""
    import pandas as pd

    name = table if isinstance(table, str) else table.name
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if "created_at" in frame.columns:
        frame["created_at"] = pd.to_datetime(frame["created_at"])
    path = settings.data_dir / "marts" / f"{name}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


def write_labels(settings: Settings, rows: Iterable[tuple[str, str, int]]) -> Path:
    """Write ``purchase_labels`` rows given as ``(user_id, cutoff, label)``."""
    import pandas as pd

    frame = pd.DataFrame(list(rows), columns=["user_id", "cutoff_time", "label"])
    frame["cutoff_time"] = pd.to_datetime(frame["cutoff_time"])
    frame["label_window_end"] = frame["cutoff_time"] + settings.task.horizon
    return write_mart(settings, LABELS_TABLE, frame)


def random_feature_frame(
    table: FeatureTable,
    rows: int,
    *,
    entities: int | None = None,
    cutoffs: int = 4,
    start: str = "2024-01-07",
    every_days: int = 7,
    null_rate: float = 0.01,
    seed: int = 0,
) -> pd.DataFrame:
    """Seeded random mart rows: ``rows`` rows over ``entities`` ids and ``cutoffs`` cutoffs.

    Each (entity, cutoff) pair appears at most once; with ``entities == rows`` every id
    has one row at a random cutoff.
    """
    import numpy as np
    import pandas as pd

    entities = entities or rows
    if rows > entities * cutoffs:
        raise ValueError(f"{rows} rows need entities * cutoffs >= rows ({entities} x {cutoffs})")
    rng = np.random.default_rng(seed)
    pairs = rng.choice(entities * cutoffs, size=rows, replace=False)
    ids = pairs % entities
    cutoff_index = pairs // entities
    values = rng.gamma(2.0, 3.0, size=(rows, len(table.feature_names)))
    values[rng.random(values.shape) < null_rate] = np.nan
    frame = pd.DataFrame(values, columns=table.feature_names)
    frame.insert(0, "cutoff_time", pd.Timestamp(start) + pd.to_timedelta(cutoff_index * every_days, unit="D"))
    frame.insert(0, table.join_key, [f"{table.entity[0]}{i}" for i in ids.tolist()])
    return frame


def write_random_marts(settings: Settings, *, users: int, items: int = 100, seed: int = 0) -> None:
    """Random user and item marts (one row per entity) for benchmarks and smoke tests."""
    write_mart(settings, USER_TABLE, random_feature_frame(USER_TABLE, users, cutoffs=1, seed=seed))
    write_mart(settings, ITEM_TABLE, random_feature_frame(ITEM_TABLE, items, cutoffs=1, seed=seed + 1))
