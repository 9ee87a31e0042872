"""The out-of-time split: earlier cutoffs train, the next validate, the latest test."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from shopflow.training.split import (
    TrainingDataError,
    feature_columns,
    frame_fingerprint,
    key_ordered,
    split_by_cutoff,
)
from shopflow.training.synthetic import synthetic_training_frame


def test_split_is_strictly_ordered_in_time() -> None:
    frame = synthetic_training_frame(rows=600, cutoffs=6, seed=1)
    split = split_by_cutoff(frame, validation_cutoffs=1, test_cutoffs=2)
    stamps = frame["event_timestamp"]
    assert stamps.iloc[split.train].max() < stamps.iloc[split.validation].min()
    assert stamps.iloc[split.validation].max() < stamps.iloc[split.test].min()
    assert len(split.test_cutoffs) == 2 and len(split.train_cutoffs) == 3
    assert len(split.train) + len(split.validation) + len(split.test) == len(frame)
    assert split.describe()["test"]["rows"] == len(split.test)


def test_too_few_cutoffs_is_a_clear_error() -> None:
    frame = synthetic_training_frame(rows=300, cutoffs=2, seed=1)
    with pytest.raises(TrainingDataError, match="needs at least 3"):
        split_by_cutoff(frame)


def test_missing_columns_and_bad_labels_are_named() -> None:
    frame = synthetic_training_frame(rows=300, cutoffs=3, seed=1)
    with pytest.raises(TrainingDataError, match=r"\['label'\]"):
        split_by_cutoff(frame.drop(columns=["label"]))
    bad = frame.assign(label=frame["label"] * 2)
    with pytest.raises(TrainingDataError, match="0/1"):
        split_by_cutoff(bad)
    one_class = frame.assign(label=0)
    with pytest.raises(TrainingDataError, match="buyers and non-buyers"):
        split_by_cutoff(one_class)


def test_feature_columns_skip_keys_labels_and_text() -> None:
    frame = synthetic_training_frame(rows=100, cutoffs=3).assign(segment="x",
                                                                 cutoff_time=pd.Timestamp(0))
    columns = feature_columns(frame)
    assert "recency_days" in columns
    assert not {"user_id", "event_timestamp", "label", "segment", "cutoff_time"} & set(columns)


def test_fingerprint_ignores_row_order_but_not_content() -> None:
    frame = synthetic_training_frame(rows=200, cutoffs=3)
    shuffled = frame.sample(frac=1.0, random_state=3)
    assert frame_fingerprint(frame) == frame_fingerprint(shuffled)
    changed = frame.copy()
    changed.loc[0, "recency_days"] += 1
    assert frame_fingerprint(changed) != frame_fingerprint(frame)


def test_key_order_is_a_stable_key_sort_and_no_copy_when_already_in_it() -> None:
    frame = synthetic_training_frame(rows=300, cutoffs=3)
    shuffled = frame.sample(frac=1.0, random_state=4)
    ordered = key_ordered(shuffled)
    expected = shuffled.sort_values(["user_id", "event_timestamp"], kind="mergesort",
                                    ignore_index=True)
    pd.testing.assert_frame_equal(ordered, expected)
    assert key_ordered(ordered) is ordered  # in order with a 0..n-1 index: not copied
    sliced = ordered.iloc[10:]  # in order, index 10..n-1: a fresh index, same rows
    pd.testing.assert_frame_equal(key_ordered(sliced), sliced.reset_index(drop=True))


def _weekly_frame(cutoffs: int, rows: int = 1200) -> pd.DataFrame:
    return synthetic_training_frame(rows=rows, cutoffs=cutoffs, seed=5, cutoff_every_days=7)


def test_no_training_or_validation_label_window_overlaps_a_later_part() -> None:
    horizon = timedelta(days=30)
    frame = _weekly_frame(20)
    split = split_by_cutoff(frame, validation_cutoffs=2, test_cutoffs=2, horizon=horizon)
    stamps = pd.to_datetime(frame["event_timestamp"], utc=True)
    label_end = stamps + horizon
    first_validation = stamps.iloc[split.validation].min()
    first_test = stamps.iloc[split.test].min()
    # every training label window (c, c + h] ends by the first validation cutoff ...
    assert (label_end.iloc[split.train] <= first_validation).all()
    # ... and every validation label window by the first test cutoff
    assert (label_end.iloc[split.validation] <= first_test).all()
    assert len(split.test_cutoffs) == 2 and len(split.validation_cutoffs) == 2
    # the closest cutoffs that qualify are kept; those in the gaps are purged, not moved
    assert split.validation_cutoffs[-1] + horizon <= split.test_cutoffs[0]
    assert split.validation_cutoffs[-1] + horizon + timedelta(days=7) > split.test_cutoffs[0]
    kept = len(split.train) + len(split.validation) + len(split.test)
    assert kept + split.purged_rows == len(frame) and split.purged_rows > 0
    described = split.describe()["purge"]
    assert isinstance(described, dict) and described["horizon_days"] == 30.0
    # 4 weekly cutoffs in each of three gaps: train|validation, validation|test, test|test
    assert len(described["cutoffs"]) == 12


def test_a_history_too_short_to_purge_is_a_clear_error() -> None:
    frame = _weekly_frame(6, rows=600)
    with pytest.raises(TrainingDataError, match="purged by the 30-day horizon"):
        split_by_cutoff(frame, horizon=timedelta(days=30))
    # a horizon no longer than the cutoff step purges nothing
    split = split_by_cutoff(frame, horizon=timedelta(days=7))
    assert split.purged_rows == 0 and len(split.train_cutoffs) == 4


def test_several_test_cutoffs_are_a_horizon_apart() -> None:
    horizon = timedelta(days=14)
    frame = _weekly_frame(14)
    split = split_by_cutoff(frame, validation_cutoffs=1, test_cutoffs=3, horizon=horizon)
    tests = split.test_cutoffs
    assert len(tests) == 3 and all(a + horizon <= b for a, b in zip(tests[:-1], tests[1:], strict=True))
    assert tests[-1] == pd.to_datetime(frame["event_timestamp"], utc=True).max()
    assert split.validation_cutoffs[-1] + horizon <= tests[0]
    assert split.train_cutoffs[-1] + horizon <= split.validation_cutoffs[0]
    stamps = pd.to_datetime(frame["event_timestamp"], utc=True)
    assert set(stamps.iloc[split.test]) == set(tests)
    # the weeks between test cutoffs are purged too (their windows overlap the tests')
    assert len(split.purged_cutoffs) == 4
    with pytest.raises(TrainingDataError, match="fewer training.test_cutoffs"):
        split_by_cutoff(_weekly_frame(8, rows=800), test_cutoffs=3, horizon=horizon)
