"""A synthetic training frame with known signal, for tests and benchmarks.

Shaped like Feast's output for ``propensity_v1`` (``user_id, event_timestamp, label`` and the
``marts.user_features`` columns) without running ingest, dbt or Feast. The label depends
on recency, frequency and money through a non-linear link (plus an interaction), so
boosted trees have something to find beyond the logistic baseline; ``signal`` scales it
(0 = pure noise).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from shopflow.features.schema import FAMILY_FEATURES, USER_TABLE

USER_FEATURES: tuple[str, ...] = tuple(USER_TABLE.feature_names)
"""The feature columns of the frame: the catalogue's user features, in mart order."""


def synthetic_training_frame(
    *,
    rows: int = 4000,
    cutoffs: int = 5,
    seed: int = 0,
    signal: float = 1.0,
    missing_rate: float = 0.02,
    extra_features: int = 0,
) -> pd.DataFrame:
    """``rows`` rows spread over ``cutoffs`` weekly cutoffs, label rate about 15-25%.

    The feature columns are exactly :data:`USER_FEATURES` in that order (a ValueError
    says which differ if the catalogue gains a feature this function does not simulate).
    The values are only roughly mart-like (they come from a few latent variables, not
    from events); ``missing_rate`` blanks a few columns so the families' NaN handling is
    exercised, although the marts never hold nulls.
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    per_cutoff = max(1, rows // cutoffs)
    n = per_cutoff * cutoffs
    activity = rng.gamma(1.5, 1.0, n)                       # latent engagement
    recency = np.minimum(90.0, rng.exponential(20.0 / (0.3 + activity)))
    events_lookback = rng.poisson(3 + 12 * activity)
    views = rng.binomial(events_lookback, 0.7)
    carts = rng.binomial(events_lookback - views, 0.6)
    purchases = rng.poisson(0.3 + 1.2 * activity)
    orders = np.minimum(purchases, rng.poisson(0.2 + 0.9 * activity))
    aov = rng.lognormal(3.0, 0.6, n)
    monetary = orders * aov
    days_since_purchase = np.where(purchases > 0, np.maximum(recency, rng.exponential(25, n)), 90.0)
    days_since_purchase = np.minimum(days_since_purchase, 90.0)
    returning = (purchases > 0).astype(float)
    frame = pd.DataFrame({
        "recency_days": recency,
        "days_since_last_purchase": days_since_purchase,
        "tenure_days": np.minimum(365.0, recency + rng.exponential(120, n)),
        "events_7d": rng.binomial(events_lookback, 0.1),
        "events_30d": rng.binomial(events_lookback, 0.35),
        "events_lookback": events_lookback.astype(float),
        "views_lookback": views.astype(float),
        "carts_lookback": carts.astype(float),
        "purchases_7d": rng.binomial(purchases, 0.1).astype(float),
        "purchases_30d": rng.binomial(purchases, 0.35).astype(float),
        "purchases_lookback": purchases.astype(float),
        "returns_lookback": rng.binomial(purchases, 0.05).astype(float),
        "orders_lookback": orders.astype(float),
        "monetary_30d": monetary * rng.uniform(0.2, 0.5, n),
        "monetary_lookback": monetary,
        "avg_order_value": np.where(orders > 0, aov, 0.0),
        "avg_basket_size": np.where(orders > 0, rng.uniform(1, 5, n), 0.0),
        "cart_rate": carts / np.maximum(events_lookback, 1),
        "conversion_rate": purchases / np.maximum(events_lookback, 1),
        "return_rate": rng.uniform(0, 0.1, n),
        "distinct_items_lookback": rng.poisson(1 + 5 * activity).astype(float),
        "distinct_categories_lookback": rng.poisson(1 + 2 * activity).astype(float),
        "active_days_lookback": np.minimum(90, rng.poisson(1 + 6 * activity)).astype(float),
        "is_returning_buyer": returning,
    })
    _add_family_features(frame, activity, seed)
    if tuple(frame.columns) != USER_FEATURES:
        raise ValueError(
            "synthetic_training_frame simulates "
            f"{sorted(set(frame.columns) ^ set(USER_FEATURES))} differently from the catalogue "
            "(shopflow.features.schema); simulate every catalogue feature, in mart order"
        )
    for k in range(extra_features):
        frame[f"noise_{k}"] = rng.normal(size=n)
    tenure = frame["tenure_days"].to_numpy()
    conversion = frame["conversion_rate"].to_numpy()
    logit = -2.2 + signal * (
        -1.0 * np.log1p(recency) / np.log1p(90)
        + 0.3 * np.log1p(purchases)
        + 2.5 * (carts >= 2) * (recency < 7)                # interaction trees can find
        + 2.0 * (conversion > 0.12)                         # threshold on a non-RFM feature
        - 1.0 * (tenure < 30)
    )
    label = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    if missing_rate > 0:
        for name in ("monetary_30d", "avg_order_value", "tenure_days", "cart_rate"):
            mask = rng.uniform(size=n) < missing_rate
            frame.loc[mask, name] = np.nan
    base = pd.Timestamp("2026-01-05", tz="UTC")
    stamps = np.repeat(np.arange(cutoffs), per_cutoff)
    frame.insert(0, "user_id", [f"u{i % (per_cutoff * 2):06d}" for i in range(n)])
    frame.insert(1, "event_timestamp", base + pd.to_timedelta(stamps * 7, unit="D"))
    frame.insert(2, "label", label)
    return frame


def _add_family_features(frame: pd.DataFrame, activity: np.ndarray, seed: int) -> None:
    """The feature-family columns (``FAMILY_FEATURES``), in catalogue order, carrying no signal.

    Drawn from their own generator so the base features and the label are exactly what
    they were before the families existed; values stay inside each kind's range and the
    nullable ones are null for about a third of the rows, as in the marts.
    """
    rng = np.random.default_rng([seed, 19])
    n = len(frame)
    for feature in FAMILY_FEATURES:
        if feature.kind == "count":
            values = rng.poisson(0.5 + 2 * activity).astype(float)
        elif feature.kind == "rate":
            values = rng.uniform(0.0, 1.0, n)
        elif feature.kind == "cyclical":
            values = rng.uniform(-1.0, 1.0, n)
        elif feature.kind == "ratio":
            values = rng.gamma(2.0, 0.5, n)
        elif feature.kind == "duration":
            values = rng.exponential(5.0, n)
        else:
            values = rng.gamma(1.5, 10.0, n)
        if feature.nullable:
            values[rng.uniform(size=n) < 0.3] = np.nan
        frame[feature.name] = values
