"""Read what recommendations are built from: staged events, cutoffs and the dbt marts.

Candidate generation needs the events themselves (who touched what, in which basket,
when); ranking needs the feature marts that dbt built (``user_features``,
``item_features`` and the recommendation marts ``user_item_features``,
``user_category_features``, ``purchase_item_labels``). Everything comes back as pandas
frames with string ids and naive UTC timestamps, whatever the warehouse backend.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from shopflow.errors import PermanentError

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

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


def _query(settings: Settings, layer: str, name: str, sql_tail: str = "",
           columns: Sequence[str] | None = None,
           params: dict[str, object] | None = None) -> pd.DataFrame:
    from shopflow.warehouse import connect

    with connect(settings) as wh:
        table = wh.table(layer, name)
        if not wh.table_exists(table):
            raise RecommendDataError(
                f"{table} is not in the {settings.warehouse.backend} warehouse: ingest events "
                "and build the dbt marts first (shopflow.transform.run_dbt)"
            )
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
    """Staged events (``staging.stg_shop__events``), the columns candidates need."""
    started = time.perf_counter()
    frame = _tidy(_query(settings, "staging", "stg_shop__events", columns=EVENT_COLUMNS))
    seconds = time.perf_counter() - started
    logger.info("read %d staged events in %.1fs (%.0f rows/s)", len(frame), seconds,
                len(frame) / seconds if seconds else 0.0)
    return frame


def load_cutoffs(settings: Settings) -> pd.DataFrame:
    """``intermediate.int_cutoffs``, oldest first."""
    frame = _tidy(_query(settings, "intermediate", "int_cutoffs", "order by cutoff_time"))
    frame["is_training_cutoff"] = frame["is_training_cutoff"].astype(bool)
    return frame


def load_mart(settings: Settings, name: str, *,
              cutoffs: Sequence[pd.Timestamp] | None = None) -> pd.DataFrame:
    """One mart, optionally only the rows of some cutoffs."""
    tail, params = "", None
    if cutoffs is not None:
        if not len(cutoffs):
            return _tidy(_query(settings, "marts", name, "where 1 = 0"))
        names = [f"c{i}" for i in range(len(cutoffs))]
        tail = "where cutoff_time in (" + ", ".join(f":{n}" for n in names) + ")"
        params = {n: _py_datetime(c) for n, c in zip(names, cutoffs, strict=True)}
    started = time.perf_counter()
    frame = _tidy(_query(settings, "marts", name, tail, params=params))
    logger.info("read marts.%s: %d rows in %.1fs", name, len(frame), time.perf_counter() - started)
    return frame


def _py_datetime(value: Any) -> object:
    import pandas as pd

    return pd.Timestamp(value).to_pydatetime()
