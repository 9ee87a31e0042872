"""LightGBM: leaf-wise trees, early stopping on the validation cutoffs, deterministic mode.

No class reweighting (``scale_pos_weight`` 1): it inflated probabilities without helping
ranking; calibration is fitted afterwards by the search (see ``families/base.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shopflow.training.families.base import FitContext, FitData, Fitted

MAX_ROUNDS = 600
EARLY_STOPPING = 30


class LightGBMPredictor:
    """A booster and the number of rounds early stopping kept."""

    def __init__(self, booster: Any, rounds: int, threads: int) -> None:
        self.booster = booster
        self.rounds = rounds
        self.threads = threads

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        return np.asarray(
            self.booster.predict(matrix, num_iteration=self.rounds, num_threads=self.threads))

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        """TreeSHAP values in log-odds; the last column is the bias."""
        return np.asarray(self.booster.predict(
            matrix, num_iteration=self.rounds, pred_contrib=True, num_threads=self.threads)
        )


def default_params(data: FitData, ctx: FitContext) -> dict[str, Any]:
    return {
        "learning_rate": 0.06,
        "num_leaves": 31,
        "min_data_in_leaf": 20,
        "feature_fraction": 0.85,
        "bagging_fraction": 0.9,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
    }


def sample_params(rng: np.random.Generator, data: FitData, ctx: FitContext) -> dict[str, Any]:
    return {
        "learning_rate": float(rng.choice([0.03, 0.05, 0.08, 0.12])),
        "num_leaves": int(rng.choice([15, 31, 63])),
        "min_data_in_leaf": int(rng.choice([10, 20, 50, 100])),
        "feature_fraction": float(rng.uniform(0.6, 1.0)),
        "bagging_fraction": float(rng.uniform(0.7, 1.0)),
        "bagging_freq": 1,
        "lambda_l2": float(10 ** rng.uniform(-1, 1)),
    }


def train_booster(
    data: FitData, params: dict[str, Any], ctx: FitContext
) -> tuple[Any, int]:
    """The library call itself (the benchmark compares Shopflow's step with this)."""
    import lightgbm as lgb

    train = lgb.Dataset(data.x_train, label=data.y_train, weight=data.w_train,
                        feature_name=data.feature_names, free_raw_data=True)
    valid = lgb.Dataset(data.x_val, label=data.y_val, reference=train)
    booster = lgb.train(
        {
            "objective": "binary",
            "metric": "binary_logloss",
            "verbosity": -1,
            "num_threads": ctx.threads,
            "seed": ctx.seed,
            "deterministic": True,
            "force_col_wise": True,
            **params,
        },
        train,
        num_boost_round=MAX_ROUNDS,
        valid_sets=[valid],
        valid_names=["validation"],
        callbacks=[lgb.early_stopping(EARLY_STOPPING, verbose=False)],
    )
    rounds = int(booster.best_iteration or booster.current_iteration())
    return booster, rounds


def fit(data: FitData, params: dict[str, Any], ctx: FitContext) -> Fitted:
    booster, rounds = train_booster(data, params, ctx)
    predictor = LightGBMPredictor(booster, rounds, ctx.threads)
    return Fitted(predictor=predictor, feature_names=list(data.feature_names),
                  params=dict(params), info={"rounds": rounds})
