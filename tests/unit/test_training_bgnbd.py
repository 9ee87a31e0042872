"""BG/NBD: the fit recovers simulated parameters; the score moves the way theory says."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shopflow.training.families import bgnbd
from shopflow.training.families.base import FitContext, FitData
from shopflow.training.families.bgnbd import (
    REQUIRED_FEATURES,
    BGNBDParams,
    MissingInputsError,
    p_alive,
    p_purchase,
)

TRUE = BGNBDParams(r=0.6, alpha=25.0, a=0.8, b=3.0)
HORIZON = 30.0


def _simulate(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Customers born at 0, observed up to T; label: a purchase in (T, T + HORIZON]."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(TRUE.r, 1.0 / TRUE.alpha, n)
    dropout = rng.beta(TRUE.a, TRUE.b, n)
    age = rng.uniform(30.0, 400.0, n)
    x = np.zeros(n)
    t_x = np.zeros(n)
    label = np.zeros(n, dtype=int)
    for i in range(n):
        t, alive = 0.0, True
        while alive:
            t += rng.exponential(1.0 / rate[i])
            if t > age[i] + HORIZON:
                break
            if t <= age[i]:
                x[i] += 1
                t_x[i] = t
            else:
                label[i] = 1
                break
            alive = rng.uniform() >= dropout[i]
    frame = pd.DataFrame({
        "purchase_days_lifetime": x + 1,
        "days_since_first_purchase": age,
        "days_since_last_purchase": age - t_x,
        "tenure_days": age + 5.0,
        "noise": rng.normal(size=n),
    })
    return frame, label


def _data(frame: pd.DataFrame, label: np.ndarray) -> FitData:
    names = list(frame.columns)
    matrix = frame.to_numpy(dtype=np.float64)
    half = len(frame) // 2
    return FitData(x_train=matrix[:half], y_train=label[:half], x_val=matrix[half:],
                   y_val=label[half:], feature_names=names)


def test_fit_recovers_the_simulated_parameters_and_ranks_buyers() -> None:
    from sklearn.metrics import roc_auc_score

    frame, label = _simulate(8000, seed=3)
    fitted = bgnbd.fit(_data(frame, label), {}, FitContext(seed=0, horizon_days=HORIZON))
    params = fitted.info["bgnbd"]
    assert params["r"] == pytest.approx(TRUE.r, rel=0.3)
    assert params["alpha"] == pytest.approx(TRUE.alpha, rel=0.35)
    # the mean purchase rate r/alpha and the mean dropout a/(a+b) are well identified
    assert params["r"] / params["alpha"] == pytest.approx(TRUE.r / TRUE.alpha, rel=0.15)
    assert params["a"] / (params["a"] + params["b"]) == pytest.approx(
        TRUE.a / (TRUE.a + TRUE.b), rel=0.3)
    assert fitted.info["fit"]["converged"] and not fitted.info["fit"]["at_bound"]
    assert fitted.feature_names == list(REQUIRED_FEATURES)
    held_out = frame.iloc[4000:]
    scores = fitted.predictor.predict(held_out[list(REQUIRED_FEATURES)].to_numpy(np.float64))
    assert ((scores >= 0) & (scores <= 1)).all()
    assert roc_auc_score(label[4000:], scores) > 0.75
    # the model's own probabilities are roughly the simulated buying rate
    assert scores.mean() == pytest.approx(label[4000:].mean(), abs=0.04)


def test_score_is_monotone_where_theory_says_so() -> None:
    age = np.full(6, 200.0)
    # just bought (t_x = T): more repeat purchases, higher P(buy)
    more = p_purchase(TRUE, np.arange(1.0, 7.0), age.copy(), age, HORIZON)
    assert (np.diff(more) > 0).all()
    # same frequency and age: a later last purchase, higher P(alive) and P(buy)
    recency = np.linspace(10.0, 200.0, 6)
    x = np.full(6, 3.0)
    assert (np.diff(p_alive(TRUE, x, recency, age)) > 0).all()
    assert (np.diff(p_purchase(TRUE, x, recency, age, HORIZON)) > 0).all()
    # nobody who has not bought again can have dropped out
    assert p_alive(TRUE, np.zeros(1), np.zeros(1), np.array([300.0]))[0] == 1.0
    # a longer horizon, a higher P(buy)
    one = np.array([2.0])
    assert (p_purchase(TRUE, one, one * 50, one * 100, 60.0)
            > p_purchase(TRUE, one, one * 50, one * 100, 30.0))


def test_never_buyers_are_scored_from_their_tenure() -> None:
    predictor = bgnbd.BGNBDPredictor(TRUE, HORIZON)
    matrix = np.array([[np.nan, np.nan, np.nan, 10.0],
                       [np.nan, np.nan, np.nan, 300.0],
                       [0.0, np.nan, np.nan, 300.0]])
    scores = predictor.predict(matrix)
    assert np.isfinite(scores).all()
    # a young account has shown less evidence of a low rate than an old silent one
    assert scores[0] > scores[1] and scores[1] == pytest.approx(scores[2])


def test_missing_lifetime_columns_are_named() -> None:
    frame, label = _simulate(200, seed=1)
    data = _data(frame.drop(columns=["days_since_first_purchase"]), label)
    with pytest.raises(MissingInputsError, match=r"lacks \['days_since_first_purchase'\]"):
        bgnbd.fit(data, {}, FitContext(seed=0, horizon_days=HORIZON))
