"""Compiled inference equals the library's on real trained models of every family.

Each family is trained once per module (quick search) on the synthetic frame; its compiled
predictor must give the library's calibrated probabilities within ``TOLERANCE`` on the
model's own test rows and on probe rows (missing values, zeros, tiny and extreme values,
float32 overflow), one row at a time as the service calls it and in batches. LightGBM is
also trained with zero-as-missing splits and missing values in training, so every
missing-value rule it has is exercised.
"""

from __future__ import annotations

import dataclasses
import pickle
from typing import TYPE_CHECKING

import numpy as np
import pytest

from shopflow.training.compiled import (
    COMPILED,
    LIBRARY,
    TOLERANCE,
    NotCompilable,
    compile_checked,
    compile_model,
    max_difference,
    probe_rows,
)
from shopflow.training.compiled.trees import NAN_LEFT, NAN_RIGHT, ZERO_LEFT, ZERO_RIGHT
from shopflow.training.families.base import FitContext, FitData
from shopflow.training.model import PropensityModel
from shopflow.training.split import feature_columns, split_by_cutoff
from shopflow.training.synthetic import synthetic_training_frame

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd

FAMILIES = ["baseline", "xgboost", "lightgbm", "torch"]
ULPS = 1e-12  # float64 sums of the same terms in another order: last bits only


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return synthetic_training_frame(rows=4000, cutoffs=5, seed=11)


@pytest.fixture(scope="module")
def test_rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.iloc[split_by_cutoff(frame).test]


@pytest.fixture
def model(frame: pd.DataFrame, quick_model: Callable[[pd.DataFrame, str], PropensityModel]
          ) -> Callable[[str], PropensityModel]:
    return lambda family: quick_model(frame, family)


@pytest.mark.parametrize("family", FAMILIES)
def test_compiled_equals_the_library_on_test_and_probe_rows(model, test_rows: pd.DataFrame,
                                                            family: str) -> None:
    fitted = model(family)
    compiled = compile_model(fitted)
    rows = probe_rows(fitted.matrix(test_rows), len(fitted.feature_names))
    assert len(rows) > len(test_rows) and np.isnan(rows).any()
    library = fitted.predictor.predict(rows)
    np.testing.assert_allclose(compiled.predict(rows), library, rtol=0, atol=TOLERANCE)
    # one row at a time, as a one-user /predict calls it
    singles = np.concatenate([compiled.predict(rows[i:i + 1]) for i in range(0, len(rows), 7)])
    np.testing.assert_allclose(singles, library[::7], rtol=0, atol=TOLERANCE)
    # and every batch size between (the trees switch strategy with the batch size)
    for size in (2, 5, 8, 9, 33):
        np.testing.assert_allclose(compiled.predict(rows[:size]), library[:size], rtol=0,
                                   atol=TOLERANCE)
    assert max_difference(compiled, fitted.predictor, rows) <= TOLERANCE


@pytest.mark.parametrize("family", FAMILIES)
def test_registration_keeps_a_checked_compiled_predictor(model, test_rows: pd.DataFrame,
                                                         family: str) -> None:
    fitted = model(family)
    compilation = compile_checked(fitted, fitted.matrix(test_rows), time_it=False)
    facts = compilation.facts
    assert compilation.predictor is not None, facts
    assert facts["inference"] == COMPILED and facts["max_abs_diff"] <= TOLERANCE
    assert facts["test_rows"] == len(test_rows) and facts["rows_checked"] > len(test_rows)
    # it pickles on its own (the registry stores it beside the model) and still agrees
    restored = pickle.loads(pickle.dumps(compilation.predictor))
    matrix = fitted.matrix(test_rows)
    np.testing.assert_allclose(restored.predict(matrix), fitted.predict_proba(test_rows),
                               rtol=0, atol=TOLERANCE)


def test_trees_match_where_the_arithmetic_is_the_same(model, test_rows) -> None:
    """LightGBM sums in float64 and XGBoost's margins in float32, as the libraries do.

    XGBoost's margins are equal bit for bit; LightGBM's sums to the last bits only
    (LightGBM's own order of additions differs from CPU to CPU: a few ulps, 1e-16).
    """
    for family in ("xgboost", "lightgbm"):
        fitted = model(family)
        compiled = compile_model(fitted)
        rows = probe_rows(fitted.matrix(test_rows), len(fitted.feature_names))
        raw = np.asarray(fitted.predictor.raw_predict(rows), dtype=np.float64)
        if family == "lightgbm":
            np.testing.assert_allclose(compiled.raw_predict(rows), raw, rtol=0, atol=ULPS)
        else:
            base = fitted.predictor.base
            margin = base.booster.inplace_predict(rows, iteration_range=(0, base.rounds),
                                                  missing=np.nan, predict_type="margin")
            with np.errstate(over="ignore"):
                np.testing.assert_array_equal(compiled.raw.margin(rows), margin)


def test_lightgbm_zero_as_missing_and_nan_splits(frame: pd.DataFrame) -> None:
    from shopflow.training.families import lgbm

    split = split_by_cutoff(frame)
    columns = feature_columns(frame)
    x = frame[columns].to_numpy(float)
    rng = np.random.default_rng(3)
    x[rng.random(x.shape) < 0.15] = np.nan  # NaN in training: missing_type NaN splits
    x[rng.random(x.shape) < 0.15] = 0.0
    y = frame["label"].to_numpy()
    data = FitData(x[split.train], y[split.train], x[split.validation], y[split.validation],
                   columns)
    ctx = FitContext(seed=1)
    for zero_as_missing in (False, True):
        params = {**lgbm.default_params(data, ctx), "zero_as_missing": zero_as_missing}
        fitted = lgbm.fit(data, params, ctx)
        model = PropensityModel(family="lightgbm", feature_names=columns,
                                feature_service="propensity_v1", params=params,
                                predictor=fitted.predictor)
        compiled = compile_model(model)
        views = set(compiled.raw.views)
        assert views & ({ZERO_LEFT, ZERO_RIGHT} if zero_as_missing else {NAN_LEFT, NAN_RIGHT})
        rows = probe_rows(x[split.test], len(columns))
        np.testing.assert_allclose(compiled.predict(rows), model.predictor.predict(rows),
                                   rtol=0, atol=ULPS)


def test_a_tampered_compiled_predictor_is_caught(model, test_rows: pd.DataFrame) -> None:
    fitted = model("xgboost")
    compiled = compile_model(fitted)
    trees = compiled.raw
    value = trees.value.copy()
    leaf = int(np.flatnonzero(trees.left == np.arange(len(trees.left)))[0])
    value[leaf] += 0.5
    tampered = dataclasses.replace(compiled, raw=dataclasses.replace(trees, value=value))
    rows = probe_rows(fitted.matrix(test_rows), len(fitted.feature_names))
    assert max_difference(compiled, fitted.predictor, rows) <= TOLERANCE
    assert max_difference(tampered, fitted.predictor, rows) > TOLERANCE


def test_bgnbd_is_served_by_its_own_numpy(frame: pd.DataFrame) -> None:
    from shopflow.training.families.bgnbd import BGNBDParams, BGNBDPredictor

    model = PropensityModel(family="bgnbd", feature_names=["a", "b", "c", "d"],
                            feature_service="propensity_v1", params={},
                            predictor=BGNBDPredictor(BGNBDParams(1, 1, 1, 1), 30.0))
    with pytest.raises(NotCompilable, match="closed-form numpy"):
        compile_model(model)
    compilation = compile_checked(model, None)
    assert compilation.predictor is None
    assert compilation.facts["inference"] == LIBRARY
    assert "closed-form" in compilation.facts["reason"]


def test_timing_sets_the_largest_batch_the_compiled_predictor_serves(
        model, test_rows: pd.DataFrame) -> None:
    fitted = model("baseline")  # sklearn's per-call validation: compiled wins at any size
    compilation = compile_checked(fitted, fitted.matrix(test_rows))
    assert compilation.predictor is not None
    timings = compilation.facts["timings"]
    assert timings["rows"][0] == 1 and len(timings["compiled_us"]) == len(timings["rows"])
    assert compilation.predictor.serves(1)
    limit = compilation.predictor.max_rows
    assert limit is None or not compilation.predictor.serves(limit + 1)
