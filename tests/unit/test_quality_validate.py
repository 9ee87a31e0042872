"""Frames handed to GX are widened to the types its checks vectorise, values unchanged."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shopflow.quality.validate import _vectorisable


def test_duckdb_types_are_widened_without_changing_values() -> None:
    times = pd.to_datetime(["2024-01-01 10:00", "2024-01-02 11:30"]).as_unit("us")
    frame = pd.DataFrame({
        "event_time": times,
        "aware": times.tz_localize("UTC"),
        "quantity": np.array([1, -2], dtype=np.int32),
        "price": np.array([1.5, 2.25], dtype=np.float32),
        "user_id": ["0042", "17850"],
    })
    widened = _vectorisable(frame)
    assert widened["event_time"].dtype == np.dtype("datetime64[ns]")
    assert str(widened["aware"].dtype) == "datetime64[ns, UTC]"
    assert widened["quantity"].dtype == np.int64
    assert widened["price"].dtype == np.float64
    assert widened["user_id"].tolist() == ["0042", "17850"]  # ids stay text
    assert (widened["event_time"] == frame["event_time"]).all()
    assert widened["quantity"].tolist() == [1, -2]


def test_a_date_outside_the_nanosecond_range_is_kept_for_the_checks_to_see() -> None:
    frame = pd.DataFrame({"event_time": np.array(["9999-01-01", "2024-01-01"],
                                                 dtype="datetime64[us]")})
    widened = _vectorisable(frame)
    assert widened["event_time"].dtype == np.dtype("datetime64[us]")
    assert widened["event_time"].iloc[0] == frame["event_time"].iloc[0]
