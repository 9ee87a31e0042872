"""Read what recommendations are built from: staged events, cutoffs and the dbt marts.

Candidate generation needs the events themselves (who touched what, in which basket,
when); ranking needs the feature marts that dbt built (``user_features``,
``item_features`` and the recommendation marts ``user_item_features``,
``user_category_features``, ``purchase_item_labels``). Everything comes back as pandas
frames with string ids and naive UTC timestamps, whatever the warehouse backend.

The recommendation step never holds the whole event table: each cutoff reads its own
window (:func:`load_window`, ids as categoricals whose values are the text ids), its own
mart rows (:func:`load_mart` with ``cutoffs``, ``buyers_only`` or a ``users`` range) and
the warehouse counts what needs no rows (:func:`load_purchased`,
:func:`newest_event_time`). :func:`load_events` (the whole table) is for tests and
notebooks.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from shopflow.errors import PermanentError

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd
    import pyarrow as pa

    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

#: The columns of staged events candidate generation reads.
EVENT_COLUMNS = ("user_id", "item_id", "category_id", "event_type", "event_time", "order_id")


#: The dbt nodes recommendations read (the recommendation marts and what they build on,
#: plus item_features): what to run when only recommendations are wanted.
DBT_SELECT = "+path:models/marts/recommendations +item_features"
#: The recommendation models alone (to test them after a run).
DBT_OWN_MODELS = "path:models/marts/recommendations path:models/intermediate/recommendations"


class RecommendDataError(PermanentError, RuntimeError):
    """The warehouse lacks what recommendations need (names the table and the fix)."""


def build_marts(settings: Settings, *, test: bool = True) -> None:
    """Run the dbt models recommendations need (and test the recommendation models).

    The training DAG builds the whole project anyway; this is for a run of
    recommendations alone (benchmarks, tests, a notebook).
    """
    from shopflow.transform import run_dbt

    run_dbt(settings, command="run", select=DBT_SELECT)
    if test:
        run_dbt(settings, command="test", select=DBT_OWN_MODELS)


def _naive(series: pd.Series) -> pd.Series:
    import pandas as pd

    values = pd.to_datetime(series)
    if getattr(values.dt, "tz", None) is not None:
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values.astype("datetime64[ns]")


def _existing_table(settings: Settings, wh: Any, layer: str, name: str) -> str:
    """``layer.name`` as the warehouse spells it; a clear error when dbt has not built it."""
    table: str = wh.table(layer, name)
    if not wh.table_exists(table):
        raise RecommendDataError(
            f"{table} is not in the {settings.warehouse.backend} warehouse: ingest events "
            "and build the dbt marts first (shopflow.transform.run_dbt)"
        )
    return table


def _query(settings: Settings, layer: str, name: str, sql_tail: str = "",
           columns: Sequence[str] | None = None,
           params: dict[str, object] | None = None) -> pd.DataFrame:
    from shopflow.warehouse import connect

    with connect(settings) as wh:
        table = _existing_table(settings, wh, layer, name)
        cols = ", ".join(columns) if columns else "*"
        return wh.query_df(f"select {cols} from {table} {sql_tail}", params)


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Ids as str, timestamps naive UTC, numbers as float64 (PostgreSQL gives Decimals)."""
    import pandas as pd

    for column in frame.columns:
        if column in ("user_id", "item_id", "category_id", "order_id", "event_type"):
            frame[column] = frame[column].astype("string").astype(object)
        elif column.endswith("_time") or column == "lookback_start":
            frame[column] = _naive(frame[column])
        elif frame[column].dtype == object:
            converted = pd.to_numeric(frame[column], errors="coerce")
            if converted.notna().sum() == frame[column].notna().sum():
                frame[column] = converted.astype("float64")
    return frame


def load_events(settings: Settings) -> pd.DataFrame:
    """All staged events (``staging.stg_shop__events``), the columns candidates need, as
    plain text ids (tests, notebooks; the pipeline reads windows, :class:`EventWindows`)."""
    started = time.perf_counter()
    frame = _tidy(_query(settings, "staging", "stg_shop__events", columns=EVENT_COLUMNS))
    seconds = time.perf_counter() - started
    logger.info("read %d staged events in %.1fs (%.0f rows/s)", len(frame), seconds,
                len(frame) / seconds if seconds else 0.0)
    return frame


#: Id columns a window carries as pandas categoricals (one small dictionary per column
#: and an integer code per row instead of a Python string per row).
_CATEGORICAL = ("user_id", "item_id", "category_id", "order_id", "event_type")


def load_window(settings: Settings, *, start: Any | None, end: Any | None,
                columns: Sequence[str] = EVENT_COLUMNS,
                purchases_only: bool = False) -> pd.DataFrame:
    """Staged events with ``start < event_time <= end`` (either bound may be None), in
    warehouse order, only ``columns``.

    Ids come back as pandas categoricals whose categories are sorted (so factorizing
    with ``sort=True`` orders codes as sorted ids, as for plain strings); their values
    are still the text ids. On DuckDB the rows travel as Arrow and never become one
    Python string per cell; on PostgreSQL the frame is converted after the fetch. This
    is what candidate generation reads per cutoff: one window, never the whole table.
    """
    from shopflow.warehouse import DuckDBWarehouse, connect

    started = time.perf_counter()
    where, params = [], {}
    if start is not None:
        where.append("event_time > :start")
        params["start"] = _py_datetime(start)
    if end is not None:
        where.append("event_time <= :end")
        params["end"] = _py_datetime(end)
    if purchases_only:
        where.append("event_type = 'purchase'")
    tail = ("where " + " and ".join(where)) if where else ""
    with connect(settings) as wh:
        table = _existing_table(settings, wh, "staging", "stg_shop__events")
        sql = f"select {', '.join(columns)} from {table} {tail}"
        if isinstance(wh, DuckDBWarehouse):
            frame = _dictionary_frame(wh.query_arrow(sql, params))
        else:
            frame = wh.query_df(sql, params or None)
    frame = _narrow(frame)
    logger.info("read %d staged events (%s < event_time <= %s) in %.1fs", len(frame), start, end,
                time.perf_counter() - started)
    return frame


def _dictionary_frame(table: pa.Table) -> pd.DataFrame:
    """An Arrow result as pandas, id columns dictionary-encoded first (categoricals)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for index, name in enumerate(table.column_names):
        column = table.column(index)
        if name in _CATEGORICAL and (pa.types.is_string(column.type)
                                     or pa.types.is_large_string(column.type)):
            table = table.set_column(index, name, pc.dictionary_encode(column))
    frame: pd.DataFrame = table.to_pandas()
    return frame


def _narrow(frame: pd.DataFrame) -> pd.DataFrame:
    """Ids as categoricals with sorted text categories, timestamps naive UTC."""
    for column in frame.columns:
        if column in _CATEGORICAL:
            values = frame[column]
            if values.dtype != "category":
                values = values.astype("string").astype(object).astype("category")
            categories = values.cat.categories
            if len(categories) and not isinstance(categories[0], str):
                values = values.cat.rename_categories([str(c) for c in categories])
            if not values.cat.categories.is_monotonic_increasing:
                values = values.cat.reorder_categories(sorted(values.cat.categories))
            frame[column] = values
        elif column.endswith("_time"):
            frame[column] = _naive(frame[column])
    return frame


def load_purchased(settings: Settings, *, until: Any | None = None) -> pd.DataFrame:
    """Distinct ``user_id, item_id`` bought at or before ``until`` (all when None), sorted,
    as text: counted in the warehouse, so no event frame is held."""
    from shopflow.warehouse import connect

    tail, params = "", None
    if until is not None:
        tail, params = "and event_time <= :until", {"until": _py_datetime(until)}
    with connect(settings) as wh:
        table = wh.table("staging", "stg_shop__events")
        frame = wh.query_df(
            f"select distinct user_id, item_id from {table} "
            f"where event_type = 'purchase' and user_id is not null and item_id is not null "
            f"{tail} order by user_id, item_id", params)
    return _tidy(frame).reset_index(drop=True)


def newest_event_time(settings: Settings) -> pd.Timestamp | None:
    """The newest staged event's time (naive UTC), None when there is none."""
    import pandas as pd

    from shopflow.warehouse import connect

    with connect(settings) as wh:
        table = wh.table("staging", "stg_shop__events")
        value = wh.scalar(f"select max(event_time) from {table}")
    if value is None or pd.isna(value):
        return None
    stamp: pd.Timestamp = _naive(pd.Series([value])).iloc[0]
    return stamp


class EventWindows:
    """Where a cutoff's events come from: the warehouse, one window per query (the
    default), or a frame already in memory (tests, notebooks)."""

    def __init__(self, settings: Settings, events: pd.DataFrame | None = None) -> None:
        self.settings = settings
        self.events = events

    def window(self, cutoff: Any, lookback: Any) -> pd.DataFrame:
        """Events in ``(cutoff - lookback, cutoff]``."""
        import pandas as pd

        from shopflow.recommend.candidates import window_events

        if self.events is not None:
            return window_events(self.events, cutoff, lookback)
        cutoff = pd.Timestamp(cutoff)
        return load_window(self.settings, start=cutoff - pd.Timedelta(lookback), end=cutoff)

    def purchased(self, until: Any | None = None) -> pd.DataFrame:
        """Distinct ``user_id, item_id`` bought at or before ``until``."""
        if self.events is None:
            return load_purchased(self.settings, until=until)
        events = self.events
        mask = events["event_type"] == "purchase"
        if until is not None:
            mask &= events["event_time"] <= until
        bought = events.loc[mask, ["user_id", "item_id"]].drop_duplicates()
        return bought.sort_values(["user_id", "item_id"]).reset_index(drop=True)

    def newest(self) -> pd.Timestamp | None:
        """The newest event's time."""
        import pandas as pd

        if self.events is None:
            return newest_event_time(self.settings)
        return pd.Timestamp(self.events["event_time"].max()) if len(self.events) else None


def load_cutoffs(settings: Settings) -> pd.DataFrame:
    """``intermediate.int_cutoffs``, oldest first."""
    frame = _tidy(_query(settings, "intermediate", "int_cutoffs", "order by cutoff_time"))
    frame["is_training_cutoff"] = frame["is_training_cutoff"].astype(bool)
    return frame


def load_mart(settings: Settings, name: str, *,
              cutoffs: Sequence[pd.Timestamp] | None = None,
              buyers_only: bool = False,
              users: tuple[str, str] | None = None) -> pd.DataFrame:
    """One mart, optionally only the rows of some cutoffs.

    With ``buyers_only`` (a user-keyed mart), only the rows of users who bought
    something after the cutoff (``purchase_item_labels`` at the same cutoff) are read:
    the only users a ranking cutoff builds rows for. With ``users = (first, last)``
    only users in that range of ids (compared as code points, as Python sorts text).
    """
    tail, params = "", None
    if cutoffs is not None:
        if not len(cutoffs):
            return _tidy(_query(settings, "marts", name, "where 1 = 0"))
        names = [f"c{i}" for i in range(len(cutoffs))]
        tail = "where cutoff_time in (" + ", ".join(f":{n}" for n in names) + ")"
        params = {n: _py_datetime(c) for n, c in zip(names, cutoffs, strict=True)}
    if buyers_only:
        labels = f"{settings.warehouse.schema('marts')}.purchase_item_labels"
        tail = (tail or "where 1 = 1") + (
            f" and user_id in (select distinct user_id from {labels} l"
            f" where l.cutoff_time = {name}.cutoff_time)")
    if users is not None:
        column = _binary("user_id", settings)
        tail = (tail or "where 1 = 1") + f" and {column} >= :first and {column} <= :last"
        params = {**(params or {}), "first": users[0], "last": users[1]}
    started = time.perf_counter()
    frame = _tidy(_query(settings, "marts", name, tail, params=params))
    logger.info("read marts.%s: %d rows in %.1fs", name, len(frame), time.perf_counter() - started)
    return frame


def _binary(column: str, settings: Settings) -> str:
    """``column`` compared by code point (DuckDB's default; PostgreSQL needs ``"C"``)."""
    return column if settings.warehouse.backend == "duckdb" else f'{column} collate "C"'


def load_mart_column(settings: Settings, name: str, column: str,
                     cutoff: pd.Timestamp) -> list[str]:
    """The distinct non-null values of one text column of a mart at one cutoff."""
    frame = _query(settings, "marts", name, f"where cutoff_time = :c and {column} is not null",
                   columns=[f"distinct {column}"], params={"c": _py_datetime(cutoff)})
    return [str(v) for v in frame[column]]


def _py_datetime(value: Any) -> object:
    import pandas as pd

    return pd.Timestamp(value).to_pydatetime()
