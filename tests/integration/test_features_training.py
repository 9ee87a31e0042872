"""Point-in-time training sets through Feast's real offline store (DuckDB over Parquet).

Feature values encode their row: feature i of a row with base b is ``b + i/100``, so the
first feature (``recency_days``) names the mart row a training row was joined to.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from shopflow.features import apply, build_training_set, load_label_entities
from shopflow.features.schema import ITEM_TABLE, USER_TABLE
from shopflow.features.synthetic import feature_row, write_labels, write_mart

if TYPE_CHECKING:
    from shopflow.settings import Settings

pytestmark = pytest.mark.integration

FIRST = USER_TABLE.feature_names[0]

MART = [
    # u1: one row per weekly cutoff.
    feature_row(USER_TABLE, "u1", "2024-01-07", 1.0),
    feature_row(USER_TABLE, "u1", "2024-01-14", 2.0),
    feature_row(USER_TABLE, "u1", "2024-01-21", 3.0),
    # u2: the 01-14 row was backfilled on 02-01: not known at 01-14.
    feature_row(USER_TABLE, "u2", "2024-01-07", 10.0),
    feature_row(USER_TABLE, "u2", "2024-01-14", 20.0, created_at="2024-02-01"),
    # u3: the 01-07 row was corrected on 01-10: the correction counts from 01-10 on.
    feature_row(USER_TABLE, "u3", "2024-01-07", 30.0, created_at="2024-01-07"),
    feature_row(USER_TABLE, "u3", "2024-01-07", 31.0, created_at="2024-01-10"),
    # u4: last seen long before the lookback (90 days) of January's cutoffs.
    feature_row(USER_TABLE, "u4", "2023-09-01", 40.0),
    # u5: a missing feature value stays missing.
    feature_row(USER_TABLE, "u5", "2024-01-07", 50.0, overrides={"tenure_days": None}),
]

# (user, entity timestamp, the base of the row that must be joined, or None)
EXPECTED = [
    ("u1", "2024-01-14 00:00:00", 2.0),  # a row at exactly the cutoff is known
    ("u1", "2024-01-13 23:59:59", 1.0),  # one second earlier: the previous week
    ("u1", "2024-01-06 00:00:00", None),  # before any row
    ("u2", "2024-01-14 00:00:00", 10.0),  # backfill created after the cutoff: excluded
    ("u2", "2024-02-01 00:00:00", 20.0),  # ...and used once it was created
    ("u3", "2024-01-07 00:00:00", 30.0),  # correction not yet made
    ("u3", "2024-01-14 00:00:00", 31.0),  # correction made before this cutoff
    ("u4", "2024-01-14 00:00:00", None),  # outside the TTL (lookback)
    ("u4", "2023-09-15 00:00:00", 40.0),  # inside it
    ("u5", "2024-01-14 00:00:00", 50.0),
    ("nobody", "2024-01-14 00:00:00", None),  # unknown user
]


@pytest.fixture
def applied(settings: Settings) -> Settings:
    write_mart(settings, USER_TABLE, MART)
    write_mart(settings, ITEM_TABLE, [feature_row(ITEM_TABLE, "i1", "2024-01-07", 1.0)])
    apply(settings)
    return settings


def _entity_frame(order: list[int]) -> pd.DataFrame:
    rows = [EXPECTED[i] for i in order]
    return pd.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "event_timestamp": pd.to_datetime([r[1] for r in rows]),
            "label": [i % 2 for i in order],
        }
    )


def test_point_in_time_join_never_sees_the_future(applied: Settings) -> None:
    order = [7, 2, 10, 0, 5, 1, 9, 3, 8, 6, 4]  # not sorted: the output must keep it
    result = build_training_set(applied, _entity_frame(order))

    assert result["user_id"].tolist() == [EXPECTED[i][0] for i in order]
    assert result["label"].tolist() == [i % 2 for i in order]
    assert list(result.columns[:3]) == ["user_id", "event_timestamp", "label"]
    assert list(result.columns[3:]) == USER_TABLE.feature_names
    for position, index in enumerate(order):
        user, stamp, base = EXPECTED[index]
        got = result[FIRST].iloc[position]
        if base is None:
            assert math.isnan(got), f"{user}@{stamp} joined a row ({got}) but none was known"
        else:
            assert got == base, f"{user}@{stamp} joined row {got}, expected {base}"


def test_every_feature_comes_from_the_same_row(applied: Settings) -> None:
    result = build_training_set(applied, _entity_frame(list(range(len(EXPECTED)))))
    known = result.dropna(subset=[FIRST])
    for index, name in enumerate(USER_TABLE.feature_names):
        expected = known[FIRST] + index / 100
        if name == "tenure_days":
            expected = expected.where(known["user_id"] != "u5")
        pd.testing.assert_series_equal(known[name], expected, check_names=False)


def test_tz_aware_and_naive_timestamps_agree(applied: Settings) -> None:
    naive = _entity_frame([0, 1, 3])
    aware = naive.assign(
        event_timestamp=naive["event_timestamp"].dt.tz_localize("UTC").dt.tz_convert("America/New_York")
    )
    a = build_training_set(applied, naive)
    b = build_training_set(applied, aware)
    pd.testing.assert_frame_equal(a, b)
    assert str(a["event_timestamp"].dt.tz) == "UTC"


def test_label_mart_feeds_the_training_set(applied: Settings) -> None:
    write_labels(applied, [("u1", "2024-01-14", 1), ("u2", "2024-01-14", 0), ("u3", "2024-01-14", 1)])
    entities = load_label_entities(applied)
    result = build_training_set(applied, entities, feature_service="propensity_v2")
    assert result[["user_id", "label"]].values.tolist() == [["u1", 1], ["u2", 0], ["u3", 1]]
    assert result[FIRST].tolist() == [2.0, 10.0, 31.0]


def test_chunked_retrieval_gives_the_same_rows_in_the_same_order(applied: Settings) -> None:
    """One cutoff per Feast call (chunks of whole cutoffs) joins exactly as one call does."""
    order = [7, 2, 10, 0, 5, 1, 9, 3, 8, 6, 4]
    whole = build_training_set(applied, _entity_frame(order))
    features = applied.features.model_copy(update={"retrieval_chunk_rows": 1})
    chunked = build_training_set(applied.model_copy(update={"features": features}),
                                 _entity_frame(order))
    assert chunked["event_timestamp"].nunique() > 1  # more than one chunk was joined
    pd.testing.assert_frame_equal(chunked, whole)


def test_unknown_feature_service_is_a_clear_error(applied: Settings) -> None:
    from feast.errors import FeatureServiceNotFoundException

    with pytest.raises(FeatureServiceNotFoundException, match="propensity_v9"):
        build_training_set(applied, _entity_frame([0]), feature_service="propensity_v9")
