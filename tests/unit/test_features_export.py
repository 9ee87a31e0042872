"""Mart snapshots are checked and normalised before Feast reads them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import pytest

from shopflow.features.export import (
    DuplicateFeatureRowsError,
    MartExportError,
    export_table,
)
from shopflow.features.schema import USER_TABLE
from shopflow.features.synthetic import feature_row, write_mart
from shopflow.privacy import id_hasher

if TYPE_CHECKING:
    from shopflow.settings import Settings


def _read_offline(settings: Settings) -> pd.DataFrame:
    return pd.read_parquet(USER_TABLE.offline_path(settings))


def test_missing_mart_names_the_file_and_the_fix(settings: Settings) -> None:
    with pytest.raises(MartExportError, match=r"user_features\.parquet not found.*transform"):
        export_table(settings, USER_TABLE)


def test_missing_columns_are_named(settings: Settings) -> None:
    row = feature_row(USER_TABLE, "u1", "2024-01-07", 1.0)
    del row["recency_days"], row["tenure_days"]
    write_mart(settings, USER_TABLE, [row])
    with pytest.raises(MartExportError, match=r"\['recency_days', 'tenure_days'\]"):
        export_table(settings, USER_TABLE)


def test_null_keys_are_rejected(settings: Settings) -> None:
    rows = [feature_row(USER_TABLE, "u1", "2024-01-07", 1.0), feature_row(USER_TABLE, None, "2024-01-07", 2.0)]
    write_mart(settings, USER_TABLE, rows)
    with pytest.raises(MartExportError, match="1 row\\(s\\) without user_id"):
        export_table(settings, USER_TABLE)


def test_types_are_normalised(settings: Settings) -> None:
    frame = pd.DataFrame([feature_row(USER_TABLE, "x", "2024-01-07", 1.0)])
    frame["user_id"] = [17850]  # numeric id in the mart
    frame["events_7d"] = frame["events_7d"].round().astype("int64")
    frame["cutoff_time"] = pd.to_datetime(["2024-01-07 01:00"]).tz_localize("Europe/Berlin")
    write_mart(settings, USER_TABLE, frame)
    result = export_table(settings, USER_TABLE)
    out = _read_offline(settings)
    assert result.rows_written == 1
    assert out["user_id"].tolist() == ["17850"]
    assert out["events_7d"].dtype == "float64"
    # 01:00 in Berlin (UTC+1 in winter) is midnight UTC, stored naive.
    assert out["cutoff_time"].iloc[0] == pd.Timestamp("2024-01-07 00:00")
    # Without a created_at column a row counts as known at its cutoff.
    assert out["created_at"].iloc[0] == out["cutoff_time"].iloc[0]


def test_exact_duplicates_are_collapsed_and_counted(settings: Settings) -> None:
    row = feature_row(USER_TABLE, "u1", "2024-01-07", 1.0)
    write_mart(settings, USER_TABLE, [row, row, feature_row(USER_TABLE, "u2", "2024-01-07", 2.0)])
    result = export_table(settings, USER_TABLE)
    assert (result.rows_read, result.rows_written, result.exact_duplicates_dropped) == (3, 2, 1)
    assert sorted(_read_offline(settings)["user_id"]) == ["u1", "u2"]


def test_conflicting_duplicates_raise_with_examples(settings: Settings) -> None:
    write_mart(
        settings,
        USER_TABLE,
        [
            feature_row(USER_TABLE, "u1", "2024-01-07", 1.0),
            feature_row(USER_TABLE, "u1", "2024-01-07", 9.0),
            feature_row(USER_TABLE, "u2", "2024-01-07", 2.0),
        ],
    )
    token = id_hasher(settings)("u1")  # the message names the shopper by pseudonym only
    with pytest.raises(DuplicateFeatureRowsError,
                       match=rf"1 \(entity, cutoff_time, created_at\).*user_id='{token}'"):
        export_table(settings, USER_TABLE)


def test_failed_export_keeps_the_previous_file(settings: Settings) -> None:
    write_mart(settings, USER_TABLE, [feature_row(USER_TABLE, "u1", "2024-01-07", 1.0)])
    export_table(settings, USER_TABLE)
    before = _read_offline(settings)
    write_mart(
        settings,
        USER_TABLE,
        [feature_row(USER_TABLE, "u1", "2024-01-14", 1.0), feature_row(USER_TABLE, "u1", "2024-01-14", 2.0)],
    )
    with pytest.raises(DuplicateFeatureRowsError):
        export_table(settings, USER_TABLE)
    pd.testing.assert_frame_equal(_read_offline(settings), before)


def test_corrections_with_later_created_at_are_kept(settings: Settings) -> None:
    write_mart(
        settings,
        USER_TABLE,
        [
            feature_row(USER_TABLE, "u1", "2024-01-07", 1.0, created_at="2024-01-07"),
            feature_row(USER_TABLE, "u1", "2024-01-07", 5.0, created_at="2024-02-01"),
        ],
    )
    result = export_table(settings, USER_TABLE)
    assert (result.rows_written, result.corrections) == (2, 1)
