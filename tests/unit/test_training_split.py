"""The out-of-time split: earlier cutoffs train, the next validate, the latest test."""

from __future__ import annotations

import pandas as pd
import pytest

from shopflow.training.split import (
    TrainingDataError,
    feature_columns,
    frame_fingerprint,
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
