"""NaN and infinities on the serving path: never served as numbers (README, HTTP API).

On the way in, an infinite online feature value is read as missing (as NaN is, which
every family imputes); on the way out, a score the model cannot give as a finite number
becomes the cold-start probability, and a recommended item without a finite score is left
out. A real :class:`PropensityModel` around a small predictor whose answers the test
chooses, so the guard is proved on the code path the service runs.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from shopflow.jsonable import jsonable
from shopflow.recommend.serving import Recommender
from shopflow.recommend.snapshot import ServingSnapshot
from shopflow.serving.served import ServedModel
from shopflow.training.model import PropensityModel

FEATURES = ["events_7d", "spend_30d"]
COLD = 0.125


class _Scripted:
    """A predictor that returns fixed answers and keeps the matrices it was given."""

    def __init__(self, answers: list[float]) -> None:
        self.answers = np.asarray(answers, dtype=np.float64)
        self.seen: list[np.ndarray] = []

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        self.seen.append(matrix.copy())
        return self.answers[: len(matrix)]


def _served(predictor: _Scripted) -> ServedModel:
    model = PropensityModel(family="xgboost", feature_names=FEATURES,
                            feature_service="propensity_v2", params={}, predictor=predictor)
    return ServedModel(version="v-test", model=model, family="xgboost",
                       feature_service="propensity_v2", feature_names=tuple(FEATURES),
                       metrics={}, trained_at=None, cold_start_probability=COLD,
                       cold_start_source="metadata.base_rate")


def test_nonfinite_scores_become_the_cold_start_probability() -> None:
    served = _served(_Scripted([0.3, math.nan, math.inf, -math.inf, 1.7, -0.2]))
    matrix = np.ones((6, 2))
    known = np.ones(6, dtype=bool)
    scores = served.score_matrix(matrix, known)
    # NaN and both infinities fall back; finite values out of range are clipped
    assert scores.tolist() == [0.3, COLD, COLD, COLD, 1.0, 0.0]
    frame = pd.DataFrame(matrix, columns=FEATURES).assign(known=True)
    frame_scores, frame_known = served.score(frame)
    assert frame_scores.tolist() == scores.tolist()
    assert frame_known.all()  # the shopper is still known: only the score fell back


def test_infinite_feature_values_are_read_as_missing() -> None:
    predictor = _Scripted([0.4, 0.5])
    served = _served(predictor)
    matrix = np.array([[math.inf, 1.0], [2.0, -math.inf]])
    served.score_matrix(matrix, np.ones(2, dtype=bool))
    seen = predictor.seen[-1]
    assert np.isnan(seen[0, 0]) and np.isnan(seen[1, 1])
    assert seen[0, 1] == 1.0 and seen[1, 0] == 2.0
    assert np.isinf(matrix).sum() == 2  # the caller's matrix is left as it was
    frame = pd.DataFrame(matrix, columns=FEATURES).assign(known=True)
    served.score(frame)
    assert np.isnan(predictor.seen[-1][0, 0]) and np.isnan(predictor.seen[-1][1, 1])


def test_unknown_shoppers_are_not_scored_at_all() -> None:
    predictor = _Scripted([math.nan])
    scores = _served(predictor).score_matrix(np.full((2, 2), np.nan),
                                             np.array([False, True]))
    assert scores.tolist() == [COLD, COLD]
    assert len(predictor.seen[-1]) == 1  # only the known row reached the model


def test_recommended_items_without_a_finite_score_are_left_out() -> None:
    snapshot = ServingSnapshot(
        cutoff=pd.Timestamp("2024-04-01"),
        ranked=pd.DataFrame({"user_id": ["u1", "u1", "u1"], "item_id": ["a", "b", "c"],
                             "score": [3.0, math.nan, math.inf], "rank": [1, 2, 3]}),
        popular=pd.DataFrame({"item_id": ["p1", "p2", "p3"],
                              "score": [math.inf, 7.0, 6.0]}),
        purchased=pd.DataFrame({"user_id": [], "item_id": []}),
    )
    recommender = Recommender(snapshot, model_version="v1", family="lightgbm")
    known = recommender.recommend("u1", 3)
    assert [i.item_id for i in known.items] == ["a", "p2", "p3"]
    assert all(math.isfinite(i.score) for i in known.items)
    cold = recommender.recommend("someone-new", 3)
    assert [i.item_id for i in cold.items] == ["p2", "p3"]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, np.float64("nan")])
def test_metadata_values_that_are_not_finite_read_as_null(value: float) -> None:
    # what ServingRuntime.metadata applies to GET /metadata (JSON has no NaN)
    assert jsonable({"metrics": {"slice_roc_auc": value, "roc_auc": 0.7}}) == {
        "metrics": {"slice_roc_auc": None, "roc_auc": 0.7}}
