"""Candidate families: deterministic, better than chance on signal, chance on noise.

Each family is trained once per module (dry run: nothing is saved) and the fit is shared
by the behavioural tests, to keep the file fast on two cores.
"""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING

import numpy as np
import pytest

from shopflow.settings import Settings, load_settings
from shopflow.training.model import MissingFeaturesError
from shopflow.training.pipeline import CandidateResult, TrainingError, train_family
from shopflow.training.split import split_by_cutoff
from shopflow.training.synthetic import synthetic_training_frame

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd

FAMILIES = ["baseline", "xgboost", "lightgbm", "torch"]
_TRAINED: dict[str, CandidateResult] = {}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return synthetic_training_frame(rows=2000, cutoffs=5, seed=11)


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return load_settings(training={"search_trials": 2, "search_seconds": 60})


def _settings_for(family: str) -> Settings:
    """Two search trials (defaults + one sampled); one for the slow-to-fit MLP."""
    return load_settings(training={"search_trials": 1 if family == "torch" else 2,
                                   "search_seconds": 60})


@pytest.fixture
def trained(fast: Settings, frame: pd.DataFrame) -> Callable[[str], CandidateResult]:
    def get(family: str) -> CandidateResult:
        if family not in _TRAINED:
            _TRAINED[family] = train_family(_settings_for(family), family, frame, "run-a",
                                            dry_run=True)
        return _TRAINED[family]

    return get


@pytest.mark.parametrize("family", FAMILIES)
def test_same_data_and_config_give_the_same_metrics(frame: pd.DataFrame, trained,
                                                    family: str) -> None:
    first = trained(family)
    # the same rows in another order must not change anything either
    second = train_family(_settings_for(family), family,
                          frame.sample(frac=1.0, random_state=5), "run-b", dry_run=True)
    assert len(first.trials) == _settings_for(family).training.search_trials
    assert first.validation_metrics == second.validation_metrics
    assert first.params == second.params
    test = frame.iloc[split_by_cutoff(frame).test]
    np.testing.assert_array_equal(first.model.predict_proba(test),
                                  second.model.predict_proba(test))


@pytest.mark.parametrize("family", FAMILIES)
def test_learns_the_signal_and_survives_pickling(frame: pd.DataFrame, trained,
                                                 family: str) -> None:
    result = trained(family)
    assert result.validation_metrics["roc_auc"] > 0.7  # minimum quality on known signal
    assert result.version == f"dryrun-{family}"
    restored = pickle.loads(pickle.dumps(result.model))
    rows = frame.head(40)
    np.testing.assert_allclose(restored.predict_proba(rows), result.model.predict_proba(rows))


@pytest.mark.parametrize("family", ["baseline", "lightgbm", "torch"])
def test_missing_values_and_column_order_are_handled(frame: pd.DataFrame, trained,
                                                     family: str) -> None:
    model = trained(family).model
    rows = frame.head(30).copy()
    expected = model.predict_proba(rows)
    reordered = rows[list(reversed(rows.columns))].assign(extra_column=1.0)
    np.testing.assert_allclose(model.predict_proba(reordered), expected)
    holes = rows.copy()
    holes.loc[holes.index[::2], model.feature_names[:5]] = np.nan
    p = model.predict_proba(holes)
    assert np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()
    with pytest.raises(MissingFeaturesError, match="none of the"):
        model.predict_proba(rows[["user_id"]])


def test_direction_recent_activity_raises_propensity(frame: pd.DataFrame, trained) -> None:
    model = trained("xgboost").model
    rows = frame.head(200).copy()
    recent = model.predict_proba(rows.assign(recency_days=1.0))
    stale = model.predict_proba(rows.assign(recency_days=85.0))
    assert recent.mean() > stale.mean()


def test_shuffled_labels_give_chance_level() -> None:
    # big enough that one purged validation cutoff holds a few hundred positives
    frame = synthetic_training_frame(rows=8000, cutoffs=5, seed=11)
    quick = load_settings(training={"search_trials": 1})
    rng = np.random.default_rng(0)
    noise = frame.assign(label=rng.permutation(frame["label"].to_numpy()))
    result = train_family(quick, "lightgbm", noise, "run", dry_run=True)
    assert abs(result.validation_metrics["roc_auc"] - 0.5) < 0.08


def test_unknown_family_is_refused(fast: Settings, frame: pd.DataFrame) -> None:
    with pytest.raises(TrainingError, match="unknown model family"):
        train_family(fast, "catboost", frame, "run", dry_run=True)


def test_cuda_requested_without_a_gpu_is_a_clear_error(frame: pd.DataFrame) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the refusal cannot be observed here")
    gpu = load_settings(training={"device": "cuda", "search_trials": 1})
    with pytest.raises(TrainingError, match="no CUDA device"):
        train_family(gpu, "torch", frame, "run", dry_run=True)


@pytest.mark.parametrize("family", FAMILIES)
def test_scoring_rows_in_place_equals_scoring_their_copy(frame: pd.DataFrame, trained,
                                                         family: str) -> None:
    """``predict_proba(frame, rows)`` (the age curve's held-out rows, scored without a
    copy of every column) gives exactly the scores of ``predict_proba(frame.iloc[rows])``."""
    model = trained(family).model
    rows = np.flatnonzero(np.arange(len(frame)) % 3 != 1)[::-1]  # any order, a subset
    np.testing.assert_array_equal(model.predict_proba(frame, rows),
                                  model.predict_proba(frame.iloc[rows]))
    assert model.predict_proba(frame, rows[:0]).shape == (0,)


def test_torch_transform_in_blocks_equals_one_piece(frame: pd.DataFrame, trained,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The MLP's preprocessing works a block of rows at a time: the same float32 inputs
    and buckets as in one piece, whatever the block size (NaNs imputed the same way)."""
    from shopflow.training.families import mlp

    model = trained("torch").model
    preprocessor = model.predictor.base.preprocessor
    matrix = model.matrix(frame)
    matrix[::7, :3] = np.nan
    numeric, buckets = preprocessor.transform(matrix)
    assert len(matrix) > 2 * 97 and numeric.dtype == np.float32
    monkeypatch.setattr(mlp, "TRANSFORM_ROWS", 97)  # many blocks and a ragged last one
    blocked_numeric, blocked_buckets = preprocessor.transform(matrix)
    np.testing.assert_array_equal(blocked_numeric, numeric)
    np.testing.assert_array_equal(blocked_buckets, buckets)
    # one piece as it was computed before the blocks
    imputed = preprocessor._impute(matrix)
    np.testing.assert_array_equal(
        numeric, ((preprocessor._log(imputed) - preprocessor.means) / preprocessor.stds)
        .astype(np.float32))
