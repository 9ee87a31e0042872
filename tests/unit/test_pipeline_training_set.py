"""The stored training set reads back as the frame that was written, whatever its size."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from shopflow.pipeline import model_stages
from shopflow.training.synthetic import synthetic_training_frame

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def test_sliced_write_and_self_destructing_read_give_the_frame_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = synthetic_training_frame(rows=900, cutoffs=3)
    frame["flag"] = np.arange(len(frame)) % 3 == 0
    frame.to_parquet(tmp_path / "plain.parquet", index=False)
    monkeypatch.setattr(model_stages, "WRITE_ROWS", 250)  # several row groups
    model_stages.write_training_set(frame, tmp_path / "sliced.parquet")
    plain = pd.read_parquet(tmp_path / "plain.parquet")
    for path in ("sliced.parquet", "plain.parquet"):
        read = model_stages.read_training_set(tmp_path / path)
        pd.testing.assert_frame_equal(read, plain, check_exact=True)
    pd.testing.assert_frame_equal(plain, frame, check_exact=True)
