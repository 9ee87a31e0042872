"""One frame -> matrix conversion: training, the propensity model and the rankers agree."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shopflow.features.matrix import feature_matrix, numeric_values


def _mixed() -> pd.DataFrame:
    return pd.DataFrame({
        "x": [1.5, 2.0, np.nan],
        "n": pd.array([1, None, 3], dtype="Int64"),
        "flag": [True, False, True],
        "maybe": pd.array([True, None, False], dtype="boolean"),
        "text": ["4.5", "oops", None],
        "extra": ["ignored", "ignored", "ignored"],
    })


def test_values_become_float64_with_nan_for_anything_missing_or_unreadable() -> None:
    matrix = feature_matrix(_mixed(), ["text", "maybe", "flag", "n", "x", "absent"])
    expected = np.array([
        [4.5, 1.0, 1.0, 1.0, 1.5, np.nan],
        [np.nan, np.nan, 0.0, np.nan, 2.0, np.nan],
        [np.nan, 0.0, 1.0, 3.0, np.nan, np.nan],
    ])
    assert matrix.dtype == np.float64 and matrix.flags.c_contiguous
    np.testing.assert_array_equal(matrix, expected)


def test_no_columns_or_no_rows_give_empty_matrices_of_the_right_shape() -> None:
    assert feature_matrix(_mixed(), []).shape == (3, 0)
    assert feature_matrix(_mixed().iloc[:0], ["x", "flag"]).shape == (0, 2)


def test_rows_give_the_matrix_of_those_rows_without_a_frame_copy() -> None:
    frame = pd.DataFrame({"a": [1.0, None, 3.0, 4.0], "b": [True, False, None, True],
                          "c": ["1", "x", "2.5", None]})
    rows = np.array([3, 0, 2])
    np.testing.assert_array_equal(feature_matrix(frame, ["c", "a", "zz", "b"], rows=rows),
                                  feature_matrix(frame.iloc[rows], ["c", "a", "zz", "b"]))
    assert feature_matrix(frame, ["a"], rows=np.array([], dtype=int)).shape == (0, 1)


def test_numeric_values_is_the_column_rule() -> None:
    np.testing.assert_array_equal(numeric_values(_mixed()["maybe"]), [1.0, np.nan, 0.0])


def test_training_the_propensity_model_and_the_rankers_use_the_one_builder() -> None:
    from shopflow.recommend.rankers import RankerModel
    from shopflow.training import pipeline
    from shopflow.training.model import PropensityModel

    assert pipeline.feature_matrix is feature_matrix
    frame = _mixed()
    names = ["x", "n", "flag", "maybe", "text"]
    propensity = PropensityModel(family="baseline", feature_names=names, feature_service="s",
                                 params={}, predictor=None)
    ranker = RankerModel(family="popularity", feature_names=names, params={}, predictor=None)
    expected = feature_matrix(frame, names)
    for matrix in (pipeline.feature_matrix(frame, names), propensity.matrix(frame),
                   ranker.matrix(frame)):
        np.testing.assert_array_equal(matrix, expected)
