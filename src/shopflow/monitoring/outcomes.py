"""What was served, and what happened next: logged predictions joined with matured labels.

Gate 4 on served traffic, the skew check's sample and A/B analysis all start from the
same frame: the prediction log's live rows (probes left out), each with the label its
user earned afterwards. The label is the training target's (``purchase_labels``): did the
user buy in ``(t, t + task.horizon]``? ``t`` is the row's ``as_of``, the data time the
served features described (shop exports are historical, so the wall clock of ``at`` says
nothing about the shop's time); rows logged without one fall back to ``at``.

A row has *matured* once the warehouse holds events up to ``t + horizon``: its latest
staged event time is at or after the window's end. Only matured rows are returned; how
many were still waiting is in ``frame.attrs["pending"]``.

The log holds keyed hashes of user ids (:class:`~shopflow.privacy.IdHasher`), so the
warehouse's purchasers are hashed the same way to join, and only they: the purchases of
the window the matured rows span, filtered in SQL.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime, timedelta

    import pandas as pd

    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

#: Columns every outcomes frame has first (then the log's other columns, in log order).
OUTCOME_COLUMNS = ["request_id", "at", "as_of", "user", "model_version", "score", "label",
                   "label_window_end"]
PURCHASE = "purchase"


def served_outcomes(settings: Settings, *, since: datetime | None = None,
                    endpoint: str = "predict") -> pd.DataFrame:
    """Logged live answers of ``endpoint`` whose labels have matured, with their label.

    Args:
        settings: SHOPFLOW_HOME (the log, the id key), the warehouse, ``task.horizon``.
        since: only answers logged (``at``) at or after this time.
        endpoint: ``predict`` or ``recommend``.

    Returns:
        One row per matured served user: :data:`OUTCOME_COLUMNS` (``as_of`` is the time
        the label was judged from, ``label`` 0/1, ``label_window_end`` = ``as_of`` +
        horizon, both UTC) then every other column of the log (``features``,
        ``known_user``, ``source``, and keys a newer writer added, such as an A/B arm),
        oldest first. ``attrs["pending"]``: live rows not matured yet;
        ``attrs["latest_event"]``: the warehouse's latest event time (None when empty).
    """
    from shopflow.privacy import IdHasher
    from shopflow.serving.prediction_log import read_prediction_log

    log = live_rows(read_prediction_log(settings.home_dir, since), endpoint)
    horizon = settings.task.horizon
    if log.empty:
        return label_outcomes(log, _no_purchases(), latest_event=None, horizon=horizon,
                              hash_id=IdHasher(settings.home_dir))
    start = _naive(data_time(log))
    latest, purchases = _warehouse_purchases(settings, start, horizon)
    return label_outcomes(log, purchases, latest_event=latest, horizon=horizon,
                          hash_id=IdHasher(settings.home_dir))


def live_rows(log: pd.DataFrame, endpoint: str = "predict") -> pd.DataFrame:
    """The log's rows of ``endpoint`` that were live traffic (no deploy-gate probes)."""
    from shopflow.serving.prediction_log import LIVE

    if endpoint not in ("predict", "recommend"):
        raise ValueError(f"endpoint: must be 'predict' or 'recommend', not {endpoint!r}")
    keep = (log["endpoint"] == endpoint) & (log["source"].fillna(LIVE) == LIVE)
    return log[keep].reset_index(drop=True)


def data_time(log: pd.DataFrame) -> pd.Series:
    """The time each row's label is judged from: ``as_of``, else ``at`` (UTC)."""
    import pandas as pd

    as_of = pd.to_datetime(log["as_of"], utc=True)
    return as_of.fillna(pd.to_datetime(log["at"], utc=True))


def label_outcomes(log: pd.DataFrame, purchases: pd.DataFrame, *,
                   latest_event: Any, horizon: timedelta,
                   hash_id: Callable[[str], str]) -> pd.DataFrame:
    """Join logged rows with the purchases that label them (the pure part of
    :func:`served_outcomes`, on frames).

    Args:
        log: prediction-log rows (``at``, ``as_of``, ``user`` hashed, ...).
        purchases: ``user_id`` (raw, as in the warehouse) and ``event_time`` of purchases;
            must hold every purchase in the windows of the matured rows.
        latest_event: the warehouse's latest event time (naive = UTC); None: nothing has
            matured.
        horizon: the label window's length (``task.horizon``).
        hash_id: the log's pseudonymizer (``IdHasher(home)``).

    Returns:
        See :func:`served_outcomes`.
    """
    import pandas as pd

    extra = [c for c in log.columns if c not in OUTCOME_COLUMNS]
    columns = [*OUTCOME_COLUMNS, *extra]
    frame = log.copy()
    frame["as_of"] = data_time(frame) if len(frame) else pd.Series(
        [], dtype="datetime64[ns, UTC]")
    frame["label_window_end"] = frame["as_of"] + pd.Timedelta(horizon)
    if latest_event is None or pd.isna(latest_event):
        matured = pd.Series(False, index=frame.index)
    else:
        latest = pd.Timestamp(latest_event)
        latest = latest.tz_localize("UTC") if latest.tzinfo is None else latest.tz_convert("UTC")
        matured = frame["label_window_end"] <= latest
    pending = int((~matured).sum())
    frame = frame[matured].copy()
    frame["label"] = _labels(frame, purchases, hash_id) if len(frame) else pd.Series(
        [], dtype="int64")
    out = frame.reindex(columns=columns).sort_values("at", kind="stable").reset_index(drop=True)
    out["label"] = out["label"].astype("int64")
    out.attrs["pending"] = pending
    out.attrs["latest_event"] = None if latest_event is None or pd.isna(latest_event) \
        else str(pd.Timestamp(latest_event))
    return out


def _labels(frame: pd.DataFrame, purchases: pd.DataFrame,
            hash_id: Callable[[str], str]) -> pd.Series:
    """1 where the row's user bought in ``(as_of, label_window_end]``: the user's first
    purchase strictly after ``as_of`` (an as-of join forward) falls in the window."""
    import numpy as np
    import pandas as pd

    bought = purchases[["user_id", "event_time"]].dropna()
    ids = bought["user_id"].astype(str)
    tokens = {uid: hash_id(uid) for uid in ids.unique()}  # the purchasers only
    bought = pd.DataFrame({"user": ids.map(tokens).to_numpy(dtype=object),
                           "first_purchase": _naive(bought["event_time"]).to_numpy()})
    rows = pd.DataFrame({"position": np.arange(len(frame)), "user": frame["user"].to_numpy(dtype=object),
                         "t": _naive(frame["as_of"]).to_numpy()})
    rows = rows.sort_values("t", kind="stable")
    joined = pd.merge_asof(rows, bought.sort_values("first_purchase", kind="stable"),
                           left_on="t", right_on="first_purchase", by="user",
                           direction="forward", allow_exact_matches=False)
    ends = _naive(frame["label_window_end"]).to_numpy()[joined["position"].to_numpy()]
    hit = joined["first_purchase"].notna().to_numpy() & (
        joined["first_purchase"].to_numpy() <= ends)
    labels = np.zeros(len(frame), dtype=np.int64)
    labels[joined["position"].to_numpy()] = hit.astype(np.int64)
    return pd.Series(labels, index=frame.index)


def _warehouse_purchases(settings: Settings, start: pd.Series, horizon: timedelta
                         ) -> tuple[Any, pd.DataFrame]:
    """The latest staged event time, and the purchases in the matured rows' windows."""
    import pandas as pd

    from shopflow.warehouse import WarehouseError, connect

    with connect(settings) as wh:
        events = wh.table("staging", "stg_shop__events")
        if not wh.table_exists(events):
            raise WarehouseError(
                f"{events} is not in the {settings.warehouse.backend} warehouse: ingest "
                "events and build the dbt models first (no labels for served predictions)")
        latest = wh.scalar(f"select max(event_time) from {events}")
        if latest is None:
            return None, _no_purchases()
        latest = pd.Timestamp(latest)
        latest = latest.tz_convert("UTC").tz_localize(None) if latest.tzinfo else latest
        matured = start[start + pd.Timedelta(horizon) <= latest]
        if matured.empty:
            return latest, _no_purchases()
        low = matured.min().to_pydatetime()
        high = (matured.max() + pd.Timedelta(horizon)).to_pydatetime()
        purchases = wh.query_df(
            f"select user_id, event_time from {events} where event_type = :kind "
            "and event_time > :low and event_time <= :high",
            {"kind": PURCHASE, "low": low, "high": high})
    logger.info("%d purchases in (%s, %s] label the served predictions", len(purchases),
                low, high)
    return latest, purchases


def _no_purchases() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({"user_id": pd.Series([], dtype=object),
                         "event_time": pd.Series([], dtype="datetime64[ns]")})


def _naive(values: pd.Series) -> pd.Series:
    """Timestamps as naive UTC (the warehouse's event times are naive UTC)."""
    import pandas as pd

    values = pd.to_datetime(values)
    if getattr(values.dt, "tz", None) is not None:
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values.astype("datetime64[ns]")
