"""The register stage's reference: the sampled labelled rows, taken without copying them all."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from shopflow.monitoring import reference
from shopflow.transform.publish import marts_dir

if TYPE_CHECKING:
    import pytest

    from shopflow.settings import Settings


def _publish(settings: Settings) -> None:
    rng = np.random.default_rng(0)
    cutoffs = pd.date_range("2024-01-01", periods=6, freq="7D")
    users = [f"u{i:03d}" for i in range(120)]
    features = pd.DataFrame([(u, c) for c in cutoffs for u in users],
                            columns=["user_id", "cutoff_time"]).sample(frac=1.0, random_state=1)
    features["orders_30d"] = rng.poisson(2, len(features)).astype(float)
    features["recency_days"] = rng.uniform(0, 90, len(features))
    labels = features[features["cutoff_time"] < cutoffs[-1]][["user_id", "cutoff_time"]]
    labels = labels.sample(frac=0.9, random_state=2).assign(
        label=rng.integers(0, 2, int(len(labels) * 0.9)), horizon_end=pd.Timestamp("2025-01-01"))
    folder = marts_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    features.to_parquet(folder / "user_features.parquet", index=False)
    labels.to_parquet(folder / "purchase_labels.parquet", index=False)


def test_labelled_reference_is_the_sample_of_the_labelled_rows(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    _publish(settings)
    monkeypatch.setattr(reference, "REFERENCE_SAMPLE_ROWS", 100)  # so it samples
    before = "2024-01-29"
    rows = reference.labelled_rows(settings)
    for cut in (None, before):
        kept = rows if cut is None else rows[rows["cutoff_time"] < pd.Timestamp(cut)]
        expected = reference.reference_sample(kept).reset_index(drop=True)
        got = reference.labelled_reference(settings, before=cut)
        assert len(got) == 100
        pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_labelled_rows_are_the_feature_rows_joined_to_their_labels(settings: Settings) -> None:
    """Joined on the keys alone, the rows are what a merge of every column gives."""
    _publish(settings)
    features = reference.read_mart_snapshot(settings, "user_features")
    labels = reference.read_mart_snapshot(settings, "purchase_labels")
    expected = (features.merge(labels[["user_id", "cutoff_time", "label"]],
                               on=["user_id", "cutoff_time"], how="inner")
                .sort_values(["user_id", "cutoff_time"]).reset_index(drop=True))
    got = reference.labelled_rows(settings)
    assert len(got) == int(len(features) * 5 / 6 * 0.9)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
