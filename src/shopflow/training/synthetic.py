"""A synthetic training frame with known signal, for tests and benchmarks.

Shaped like Feast's output for ``propensity_v2`` (``user_id, event_timestamp, label`` and the
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
"""The feature columns of the frame: the default task's user features, in mart order."""

_LIFETIME_ONLY = (
    "days_since_first_purchase", "purchases_lifetime", "orders_lifetime",
    "purchase_days_lifetime", "monetary_lifetime", "monetary_7d",
)
"""Columns filled after the label is drawn (so the signal of the other columns is kept)."""


def synthetic_training_frame(
    *,
    rows: int = 4000,
    cutoffs: int = 5,
    seed: int = 0,
    signal: float = 1.0,
    missing_rate: float = 0.02,
    extra_features: int = 0,
    cutoff_every_days: int = 30,
) -> pd.DataFrame:
    """``rows`` rows spread over ``cutoffs`` cutoffs, label rate about 15-25%.

    The cutoffs are ``cutoff_every_days`` apart: 30 by default, the default task horizon,
    so consecutive cutoffs' label windows do not overlap and the purged out-of-time split
    (:func:`shopflow.training.split.split_by_cutoff`) keeps every cutoff.

    The feature columns are exactly :data:`USER_FEATURES` in that order (a ValueError
    says which differ if the catalogue gains a feature this function does not simulate).
    The values are only roughly mart-like (they come from a few latent variables, not
    from events); ``missing_rate`` blanks a few columns so the families' NaN handling is
    exercised (the marts only hold nulls in ``days_since_*_purchase``: never bought, which
    this frame reproduces too).
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
    # the draws of the v1 columns, in their old order, so labels and signal are unchanged
    simulated = {
        "recency_days": recency,
        "days_since_last_purchase": np.where(purchases > 0, days_since_purchase, np.nan),
        "tenure_days": np.minimum(365.0, recency + rng.exponential(120, n)),
        "events_7d": rng.binomial(events_lookback, 0.1),
        "events_30d": rng.binomial(events_lookback, 0.35),
        "events_90d": events_lookback.astype(float),
        "views_lookback": views.astype(float),
        "carts_lookback": carts.astype(float),
        "purchases_7d": rng.binomial(purchases, 0.1).astype(float),
        "purchases_30d": rng.binomial(purchases, 0.35).astype(float),
        "purchases_90d": purchases.astype(float),
        "returns_lookback": rng.binomial(purchases, 0.05).astype(float),
        "orders_lookback": orders.astype(float),
        "monetary_30d": monetary * rng.uniform(0.2, 0.5, n),
        "monetary_90d": monetary,
        "avg_order_value": np.where(orders > 0, aov, 0.0),
        "avg_basket_size": np.where(orders > 0, rng.uniform(1, 5, n), 0.0),
        "cart_rate": carts / np.maximum(events_lookback, 1),
        "conversion_rate": purchases / np.maximum(events_lookback, 1),
        "return_rate": rng.uniform(0, 0.1, n),
        "distinct_items_lookback": rng.poisson(1 + 5 * activity).astype(float),
        "distinct_categories_lookback": rng.poisson(1 + 2 * activity).astype(float),
        "active_days_lookback": np.minimum(90, rng.poisson(1 + 6 * activity)).astype(float),
        "is_returning_buyer": returning,
    }
    frame = pd.DataFrame({name: simulated.get(name, np.nan) for name in USER_FEATURES})
    families = {f.name for f in FAMILY_FEATURES}
    missing = sorted(set(USER_FEATURES) - set(simulated) - set(_LIFETIME_ONLY) - families)
    if missing:
        raise ValueError(
            f"synthetic_training_frame does not simulate {missing} of the catalogue "
            "(shopflow.features.schema); simulate every catalogue feature"
        )
    _add_family_features(frame, activity, seed)
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
    # lifetime history and the 7d money, drawn last so the columns above keep their values
    extra_purchases = rng.poisson(0.5 * activity)
    extra_orders = np.minimum(extra_purchases, rng.poisson(0.4 * activity))
    frame["purchases_lifetime"] = (purchases + extra_purchases).astype(float)
    frame["orders_lifetime"] = (orders + extra_orders).astype(float)
    frame["purchase_days_lifetime"] = frame["orders_lifetime"]
    frame["monetary_lifetime"] = monetary + extra_orders * aov
    frame["monetary_7d"] = frame["monetary_30d"].fillna(0.0) * rng.uniform(0.1, 0.4, n)
    bought = frame["purchases_lifetime"].to_numpy() > 0
    last = frame["days_since_last_purchase"].fillna(frame["tenure_days"] * 0.5).to_numpy()
    frame["days_since_last_purchase"] = np.where(bought, last, np.nan)
    frame["days_since_first_purchase"] = np.where(
        bought, np.maximum(last, frame["tenure_days"].fillna(365.0).to_numpy() * 0.8), np.nan
    )
    base = pd.Timestamp("2026-01-05", tz="UTC")
    stamps = np.repeat(np.arange(cutoffs), per_cutoff)
    frame.insert(0, "user_id", [f"u{i % (per_cutoff * 2):06d}" for i in range(n)])
    frame.insert(1, "event_timestamp", base + pd.to_timedelta(stamps * cutoff_every_days, unit="D"))
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
