"""The serving snapshot's model inputs, gathered from mart rows encoded once, equal the
joined frame's own.

The snapshot encodes each mart row (a user's ~70 columns, an item's, a user-item pair's)
once and gathers the encoded rows per candidate, instead of joining a frame of ~100
columns per candidate and encoding it. These tests pin that the two give the same inputs
and the same scores, bit for bit, on a small hand-made frame with missing keys, NaN,
integer and boolean columns, and that the ranker's encoding is entry by entry.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shopflow.recommend.dataset import fill_interactions
from shopflow.recommend.rankers import (
    LightGBMRankPredictor,
    PopularityPredictor,
    RankerModel,
    TorchNCFPredictor,
    _build_net,
    popularity_model,
)
from shopflow.recommend.snapshot import _encoded_rows, _KeyedRows, _Layout

LOOKBACK_DAYS = 30.0
FEATURES = ["src_recent", "cand_popularity", "ui_views_lookback", "ui_days_since_last_event",
            "ui_recency_rank", "item_avg_price", "item_buyers_lookback", "not_anywhere",
            "events_7d", "is_returning_buyer", "monetary_7d"]


def _torch_model(seed: int = 0) -> RankerModel:
    """A torch ranker with a randomly initialised net (training is not what is tested)."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    users = {f"u{k}": k + 1 for k in range(4)}
    items = {f"i{k}": k + 1 for k in range(5)}
    net = _build_net(len(users) + 1, len(items) + 1, len(FEATURES), 4, 8)
    predictor = TorchNCFPredictor(
        state={k: v.detach().clone() for k, v in net.state_dict().items()}, users=users,
        items=items, mean=rng.normal(size=len(FEATURES)), std=rng.uniform(0.5, 2.0, len(FEATURES)),
        dim=4, hidden=8)
    return RankerModel("torch", FEATURES, {}, predictor)


def _marts() -> dict[str, tuple[pd.DataFrame, np.ndarray]]:
    """Mart values keyed by int codes (user-item pairs: user * 10 + item)."""
    user_item = pd.DataFrame({"ui_views_lookback": [3, 0, 7],
                              "ui_days_since_last_event": [2.5, np.nan, 0.0],
                              "ui_recency_rank": [1.0, 2.0, np.nan]})
    items = pd.DataFrame({"item_avg_price": [9.99, np.nan, 120.0, 0.5],
                          "item_buyers_lookback": np.array([4, 0, 12, 1], dtype=np.int32)})
    users = pd.DataFrame({"events_7d": [0.0, 12.0, 3.0], "is_returning_buyer": [True, False, True],
                          "monetary_7d": [-4.0, 250.0, np.nan]})
    return {"user_item_features": (user_item, np.array([2, 11, 24])),
            "item_features": (items, np.array([0, 1, 2, 4])),
            "user_features": (users, np.array([0, 1, 2]))}


def _candidates() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Candidate rows of users 0..3 (3 has no user_features row) and items 0..4 (3 has none)."""
    u = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3, 3])
    i = np.array([0, 2, 3, 1, 4, 0, 3, 4, 2, 0])
    frame = pd.DataFrame({"u": u, "i": i, "src_recent": (u + i) % 2 * 1.0,
                          "cand_popularity": np.linspace(-3.0, 40.0, len(u))})
    return frame, u, i


def _joined(frame: pd.DataFrame, keyed: dict[str, _KeyedRows],
            keys: dict[str, np.ndarray]) -> pd.DataFrame:
    """The old way: one frame with every mart's columns taken per candidate, filled."""
    parts = [frame, *(keyed[name].take(keys[name]) for name in keys)]
    return fill_interactions(pd.concat(parts, axis=1), lookback_days=LOOKBACK_DAYS)


@pytest.mark.parametrize("model", [_torch_model(0), _torch_model(1), popularity_model()])
def test_gathered_inputs_score_as_the_joined_frame(model: RankerModel) -> None:
    keyed = {name: _KeyedRows.of(values.assign(key=keys), keys, ["key"])
             for name, (values, keys) in _marts().items()}
    frame, u, i = _candidates()
    keys = {"user_item_features": u * 10 + i, "item_features": i, "user_features": u}
    layout = _Layout.of(model, {**{name: list(rows.values.columns)
                                   for name, rows in keyed.items()},
                                "user_category_features": []})
    gathered = {name: _encoded_rows(model, keyed[name], layout.sources[name],
                                    LOOKBACK_DAYS)[keyed[name].positions(k)]
                for name, k in keys.items()}
    gathered["user_category_features"] = np.zeros((len(frame), 0))
    inputs = layout.inputs(model, frame, gathered)

    joined = _joined(frame, keyed, keys)
    expected_inputs = model.encode(model.matrix(joined), np.arange(len(FEATURES)))
    np.testing.assert_array_equal(inputs, expected_inputs)
    ids = joined.assign(user_id=[f"u{k}" for k in u], item_id=[f"i{k}" for k in i])
    user_codes = model.codes("users", np.asarray([f"u{k}" for k in range(4)], dtype=object))
    item_codes = model.codes("items", np.asarray([f"i{k}" for k in range(5)], dtype=object))
    scores = model.forward(None if user_codes is None else user_codes[u],
                           None if item_codes is None else item_codes[i], inputs)
    np.testing.assert_array_equal(scores, model.score(ids))


def test_a_missing_key_gathers_the_all_missing_row() -> None:
    values, keys = _marts()["user_features"]
    rows = _KeyedRows.of(values.assign(key=keys), keys, ["key"])
    np.testing.assert_array_equal(rows.positions(np.array([2, 7, -1, 0])), [2, 3, 3, 0])
    model = _torch_model()
    columns = np.array([FEATURES.index("events_7d"), FEATURES.index("monetary_7d")])
    encoded = _encoded_rows(model, rows, columns, LOOKBACK_DAYS)
    assert encoded.shape == (4, 2)
    np.testing.assert_array_equal(encoded[3], [0.0, 0.0])  # NaN standardised is 0


def test_the_torch_encoding_is_entry_by_entry() -> None:
    model = _torch_model()
    rng = np.random.default_rng(3)
    matrix = rng.normal(scale=50.0, size=(200, len(FEATURES)))
    matrix[rng.random(matrix.shape) < 0.2] = np.nan
    matrix[rng.random(matrix.shape) < 0.2] = 0.0
    whole = model.encode(matrix, np.arange(len(FEATURES)))
    assert whole.dtype == np.float32
    columns = np.array([6, 1, 9])
    np.testing.assert_array_equal(model.encode(matrix[:, columns], columns), whole[:, columns])
    np.testing.assert_array_equal(model.encode(matrix[50:60], np.arange(len(FEATURES))),
                                  whole[50:60])


def test_feature_only_predictors_have_no_codes_and_predict_their_forward() -> None:
    frame = pd.DataFrame({"cand_popularity": [3.0, 1.0, 2.0]})
    model = popularity_model()
    matrix = model.matrix(frame)
    assert model.codes("users", np.asarray(["a"], dtype=object)) is None
    np.testing.assert_array_equal(PopularityPredictor().predict(frame, matrix), [3.0, 1.0, 2.0])
    np.testing.assert_array_equal(model.forward(None, None, model.encode(matrix, np.arange(1))),
                                  model.score(frame))
    assert LightGBMRankPredictor(booster=None, rounds=1).encode(matrix) is matrix


def test_the_torch_ranker_needs_codes() -> None:
    model = _torch_model()
    with pytest.raises(ValueError, match="user and item codes"):
        model.forward(None, None, np.zeros((2, len(FEATURES)), np.float32))


def test_the_torch_ranker_scores_on_its_threads_and_restores_the_setting() -> None:
    import torch

    model = _torch_model()
    rng = np.random.default_rng(4)
    x = rng.normal(size=(300, len(FEATURES))).astype(np.float32)
    u, i = rng.integers(0, 5, 300), rng.integers(0, 6, 300)
    before = torch.get_num_threads()
    default = model.forward(u, i, x)
    model.predictor.threads = 1
    np.testing.assert_array_equal(model.forward(u, i, x), default)
    assert torch.get_num_threads() == before
