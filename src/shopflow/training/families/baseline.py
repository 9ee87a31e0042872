"""Baseline: scaled logistic regression on recency / frequency / monetary features.

The bar every other family must clear on the first run (docs/DESIGN.md §6): if a boosted tree
cannot beat RFM + logistic regression, something is wrong with the data or the features.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shopflow.features.schema import USER_TABLE, is_windowed
from shopflow.training.families.base import FitContext, FitData, Fitted

#: RFM-style columns of marts.user_features of the default task (those the catalogue marks
#: ``baseline``), in mart order; any subset present is used, and so is every windowed
#: column (events/purchases/monetary over the task's windows, whatever they are).
RFM_FEATURES: tuple[str, ...] = tuple(f.name for f in USER_TABLE.catalogue if f.baseline)


def _signed_log1p(x: np.ndarray) -> np.ndarray:
    """Tames heavy-tailed counts and money so a linear model is not ruled by outliers."""
    result: np.ndarray = np.sign(x) * np.log1p(np.abs(x))
    return result


class LogisticPredictor:
    """A fitted sklearn pipeline over a subset of the model's columns."""

    def __init__(self, pipeline: Any, columns: list[int]) -> None:
        self.pipeline = pipeline
        self.columns = columns

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        scores: np.ndarray = self.pipeline.predict_proba(matrix[:, self.columns])[:, 1]
        return scores


def select_features(feature_names: list[str]) -> list[str]:
    """The RFM columns present, then other windowed ones, or every column when it has none."""
    fixed = set(RFM_FEATURES)
    chosen = [name for name in RFM_FEATURES if name in feature_names]
    chosen += [name for name in feature_names if name not in fixed and is_windowed(name)]
    return chosen or list(feature_names)


def default_params(data: FitData, ctx: FitContext) -> dict[str, Any]:
    return {"C": 1.0}


def sample_params(rng: np.random.Generator, data: FitData, ctx: FitContext) -> dict[str, Any]:
    return {"C": float(10 ** rng.uniform(-2.5, 1.5))}


def fit(data: FitData, params: dict[str, Any], ctx: FitContext) -> Fitted:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    names = select_features(data.feature_names)
    columns = [data.feature_names.index(n) for n in names]
    pipeline = make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True),
        FunctionTransformer(_signed_log1p),
        StandardScaler(),
        LogisticRegression(C=params["C"], max_iter=500, random_state=ctx.seed),
    )
    # the sample weights of a down-sampled set (training.max_rows) reach the scaler and
    # the likelihood; the median imputer only picks a fill value and takes none
    weights = ({} if data.w_train is None else
               {"standardscaler__sample_weight": data.w_train,
                "logisticregression__sample_weight": data.w_train})
    pipeline.fit(data.x_train[:, columns], data.y_train, **weights)
    predictor = LogisticPredictor(pipeline, list(range(len(names))))
    return Fitted(predictor=predictor, feature_names=names, params=dict(params),
                  info={"features_used": names})
