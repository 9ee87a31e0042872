"""The feature catalogue: every mart column that becomes a Feast feature, described once.

Each feature has one entry here: its name, the mart's SQL type, the description, what
kind of quantity it is (which fixes the range the marts promise) and whether the
logistic baseline reads it. Everything else derives from or is tested against this list,
so the places that name features cannot drift apart:

- the Feast fields (``shopflow.features.definitions``, hence ``feature_repo/``) take
  names and descriptions from here;
- the marts suite (``expectations/marts.py``) groups its checks by :attr:`Feature.kind`;
- the mart snapshots for tests (``shopflow.features.synthetic``), the synthetic training
  frame (``shopflow.training.synthetic``) and the baseline's columns
  (``shopflow.training.families.baseline``) take their names from here;
- the dbt docs (``dbt_project/models/marts/*.yml``) are YAML that dbt reads, so they
  cannot import this module; ``tests/unit/test_feature_catalogue.py`` fails when their
  column names, order or descriptions differ from these.

The descriptions say what ``dbt_project/models/marts/*.sql`` computes, which is the truth
the others must follow. Pure Python: importing this module never imports Feast.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from shopflow.features.windows import ladder, task_windows, window_suffix

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path

    from shopflow.settings import Settings

TIMESTAMP_FIELD = "cutoff_time"
"""Event timestamp of every feature row: the cutoff the row describes."""

CREATED_FIELD = "created_at"
"""When the row became known. Optional in the marts; defaults to ``cutoff_time``."""

FeatureKind = Literal[
    "duration", "count", "rate", "amount", "flag", "price", "rank", "ratio", "cyclical"
]
"""What a feature measures, which fixes the values the marts promise for it.

``duration``: days, >= 0. ``count``: events, lines, orders or distinct things, >= 0.
``rate``: a share, in [0, 1]. ``amount``: money or a per-order average, not range-checked
by the marts suite. ``flag``: 0 or 1. ``price``: a unit price, null when no event in the
window carried one. ``rank``: 1 = first. ``ratio``: a non-negative quotient or mean that
is not a share (a trend ratio, a price index, events per session), >= 0, upper bound in its
description. ``cyclical``: a mean of sin or cos of a clock angle, in [-1, 1].
"""

_RANGES: dict[str, tuple[float | None, float | None]] = {
    "duration": (0.0, None),
    "count": (0.0, None),
    "rate": (0.0, 1.0),
    "amount": (None, None),
    "flag": (0.0, 1.0),
    "price": (None, None),
    "rank": (1.0, None),
    "ratio": (0.0, None),
    "cyclical": (-1.0, 1.0),
}


@dataclass(frozen=True)
class Feature:
    """One feature column of a mart, as every consumer should understand it."""

    name: str
    """Column name in the mart, the Feast field and the model's feature list."""
    description: str
    """What the mart's SQL computes; the Feast field and the dbt docs carry this text."""
    kind: FeatureKind
    """What it measures (see :data:`FeatureKind`); the marts suite checks by kind."""
    mart_type: str = "DOUBLE"
    """SQL type in the mart. The Parquet export casts every feature to DOUBLE for Feast."""
    nullable: bool = False
    """Whether the mart may hold nulls (only the user feature families, where undefined)."""
    baseline: bool = False
    """Whether the logistic baseline reads it (its recency/frequency/monetary columns)."""

    @property
    def value_range(self) -> tuple[float | None, float | None]:
        """Inclusive ``(min, max)`` the mart promises for non-null values (None: open)."""
        return _RANGES[self.kind]


FAMILY_FEATURES: tuple[Feature, ...] = (
    # timing (int_user_timing_features): gaps between consecutive distinct instants
    Feature("event_gap_mean_days_lookback",
            "Mean days between consecutive distinct event instants, both in the window; "
            "null with fewer than two instants.",
            "duration", nullable=True),
    Feature("event_gap_std_days_lookback",
            "Sample standard deviation of those gaps in days; null with fewer than two gaps.",
            "duration", nullable=True),
    Feature("event_gap_cv_lookback",
            "event_gap_std / event_gap_mean (regularity, 0 = clockwork); null when the std is.",
            "ratio", nullable=True),
    Feature("purchase_gap_mean_days_lookback",
            "Mean days between consecutive distinct purchase instants, both in the window; "
            "null with fewer than two.",
            "duration", nullable=True),
    Feature("purchase_gap_std_days_lookback",
            "Sample standard deviation of those purchase gaps in days; null with fewer than two "
            "gaps.",
            "duration", nullable=True),
    Feature("purchase_gap_cv_lookback",
            "purchase_gap_std / purchase_gap_mean (buying regularity); null when the std is.",
            "ratio", nullable=True),
    Feature("purchase_recency_over_mean_gap_lookback",
            "Days since the last purchase / purchase_gap_mean_days_lookback, capped at 100 "
            "(> 1: overdue); null without a purchase gap.",
            "ratio", nullable=True),
    # trend (int_user_trend_features): short window = min(horizon, lookback)
    Feature("event_rate_short_over_lookback",
            "Events per day in the short window (min(horizon, lookback)) / events per day in "
            "the lookback; 1 = steady, in [0, lookback / short].",
            "ratio"),
    Feature("purchase_rate_short_over_lookback",
            "Purchase lines per day in the short window / per day in the lookback; null "
            "without a purchase in the lookback.",
            "ratio", nullable=True),
    Feature("monetary_rate_short_over_lookback",
            "Purchase amount per day in the short window / per day in the lookback; null "
            "without a purchase amount in the lookback.",
            "ratio", nullable=True),
    # intent (int_user_intent_features)
    Feature("carted_not_bought_items_lookback",
            "Items whose last cart in the window is later than their last purchase there (or "
            "that have none); 0 without carts.",
            "count"),
    Feature("carted_not_bought_value_lookback",
            "Sum over those items of the highest unit price their carts carried (0 without a "
            "price).",
            "amount"),
    Feature("viewed_only_items_lookback",
            "Items viewed in the window but neither carted nor bought there.", "count"),
    Feature("repeat_viewed_items_lookback", "Items viewed at least twice in the window.",
            "count"),
    Feature("max_views_of_one_item_lookback",
            "Most views of a single item in the window; 0 without views.", "count"),
    Feature("days_since_last_cart",
            "Days from the last add-to-cart in the window; null without one.",
            "duration", nullable=True),
    # sessions (int_user_session_features): split at gaps over min(30 minutes, horizon)
    Feature("sessions_lookback",
            "Sessions (split at gaps over min(30 minutes, horizon)) with an event in the "
            "window.",
            "count"),
    Feature("events_per_session_lookback", "Events in the window / sessions_lookback (>= 1).",
            "ratio"),
    Feature("mean_session_length_days_lookback",
            "Mean days from a session's first to its last event, within the window.",
            "duration"),
    Feature("last_session_events", "Events of the latest session, up to the cutoff.", "count"),
    Feature("last_session_length_days",
            "Days from the first to the last event of the latest session, within the window.",
            "duration"),
    Feature("days_since_last_session_start",
            "Days from the start of the latest session (within the window) to the cutoff; "
            "a customer without events in the window: days from their last event.",
            "duration"),
    # context (int_user_context_features): every user's events in the same window
    Feature("touched_item_popularity_lookback",
            "Mean events (all users, same window) of the distinct items the user touched.",
            "ratio"),
    Feature("touched_item_conversion_rate_lookback",
            "purchases / (views + carts + purchases) of all users on the items the user "
            "touched, same window; null when all are 0.",
            "rate", nullable=True),
    Feature("touched_category_conversion_rate_lookback",
            "purchases / (views + carts + purchases) of all users in the categories the user "
            "touched, same window; null without categories.",
            "rate", nullable=True),
    Feature("top_category_share_lookback",
            "Share of the user's categorised events in their most active category; null "
            "without categories.",
            "rate", nullable=True),
    # time profile (int_user_time_profile_features): UTC clock, circular means
    Feature("hour_sin_mean_lookback", "Mean of sin(2 pi hour / 24) over the window's events.",
            "cyclical"),
    Feature("hour_cos_mean_lookback", "Mean of cos(2 pi hour / 24) over the window's events.",
            "cyclical"),
    Feature("hour_concentration_lookback",
            "Length of the mean (sin, cos) hour vector: 1 = always the same hour, 0 = spread.",
            "rate"),
    Feature("weekday_sin_mean_lookback",
            "Mean of sin(2 pi weekday / 7), Monday = 0, over the window's events.", "cyclical"),
    Feature("weekday_cos_mean_lookback",
            "Mean of cos(2 pi weekday / 7), Monday = 0, over the window's events.", "cyclical"),
    Feature("weekend_share_lookback", "Share of the window's events on a Saturday or Sunday.",
            "rate"),
    Feature("night_share_lookback", "Share of the window's events between 00:00 and 06:00.",
            "rate"),
    # money (int_user_money_features): category price level at the cutoff
    Feature("viewed_price_index_lookback",
            "Mean over priced views of price / the category's mean price in the window (all "
            "users; the shop's without a category); null without a priced view.",
            "ratio", nullable=True),
    Feature("bought_price_index_lookback",
            "Mean over priced purchases of price / the category's mean price in the window "
            "(all users; the shop's without a category); null without one.",
            "ratio", nullable=True),
    Feature("returns_value_lookback",
            "Sum of price x |quantity| over returns in the window (a missing price counts 0).",
            "amount"),
    Feature("returns_value_share_lookback",
            "returns_value / (purchase amount + returns_value); null when both are 0.",
            "rate", nullable=True),
)
"""Point-in-time feature families appended to ``marts.user_features`` (one dbt model each,
``dbt_project/models/intermediate/int_user_*_features.sql``). Missing values are explicit:
``nullable`` ones are null where undefined (trees read nulls natively), never imputed. A
customer without events in the lookback (dormant) has no family row: ``user_features``
gives them 0 for the non-nullable counts, rates, shares and time profile."""

#: Time-profile features and the cycle they describe, in seconds: a task whose longest
#: feature window is shorter than the cycle leaves them out (on a 60-minute lookback the
#: weekday of every event is the same, the hour nearly so: constant columns, no signal).
PROFILE_CYCLES: dict[str, int] = {
    **dict.fromkeys(("hour_sin_mean_lookback", "hour_cos_mean_lookback",
                     "hour_concentration_lookback", "night_share_lookback"), 86_400),
    **dict.fromkeys(("weekday_sin_mean_lookback", "weekday_cos_mean_lookback",
                     "weekend_share_lookback"), 7 * 86_400),
}

LEGACY_USER_CATALOGUE: tuple[Feature, ...] = (
    Feature("recency_days", "Days from the last event in the window to the cutoff.",
            "duration", baseline=True),
    Feature("days_since_last_purchase",
            "Days from the last purchase in the window; the lookback in days if none.",
            "duration", baseline=True),
    Feature("tenure_days", "Days from the first event in the window (capped by the lookback).",
            "duration", baseline=True),
    Feature("events_7d", "Events in the 7 days before the cutoff.", "count"),
    Feature("events_30d", "Events in the 30 days before the cutoff.", "count", baseline=True),
    Feature("events_lookback", "Events in the lookback window.", "count", baseline=True),
    Feature("views_lookback", "Product views in the lookback window.", "count"),
    Feature("carts_lookback", "Add-to-cart events in the lookback window.", "count"),
    Feature("purchases_7d", "Purchase lines in the 7 days before the cutoff.", "count"),
    Feature("purchases_30d", "Purchase lines in the 30 days before the cutoff.", "count",
            baseline=True),
    Feature("purchases_lookback", "Purchase lines in the lookback window.", "count",
            baseline=True),
    Feature("returns_lookback", "Return lines in the lookback window.", "count"),
    Feature("orders_lookback",
            "Distinct orders in the lookback window (a purchase without an order id is its own).",
            "count", baseline=True),
    Feature("monetary_30d", "Sum of price x quantity over purchases in the 30 days before the cutoff.",
            "amount", baseline=True),
    Feature("monetary_lookback",
            "Sum of price x quantity over purchases (gross; returns are counted apart).",
            "amount", baseline=True),
    Feature("avg_order_value", "monetary_lookback / orders_lookback; 0 without orders.",
            "amount", baseline=True),
    Feature("avg_basket_size", "Units purchased / orders_lookback; 0 without orders.", "amount"),
    Feature("cart_rate", "carts / (views + carts); 0 when both are 0.", "rate"),
    Feature("conversion_rate", "purchases / (views + carts + purchases); 0 when all are 0.",
            "rate"),
    Feature("return_rate", "returns / (purchases + returns); 0 when both are 0.", "rate"),
    Feature("distinct_items_lookback", "Distinct items touched in the lookback window.", "count"),
    Feature("distinct_categories_lookback", "Distinct categories touched in the lookback window.",
            "count"),
    Feature("active_days_lookback", "Days with at least one event in the lookback window.",
            "count"),
    Feature("is_returning_buyer", "1.0 when the window holds at least two orders.", "flag"),
)
"""The v1 user features (``propensity_v1``): fixed 7d/30d windows capped at the lookback.

The catalogue before features were generated for the task; kept so that a model trained
on ``propensity_v1`` keeps its exact column list (see :func:`propensity_service_name`).
"""


DEFAULT_WINDOWS: tuple[int, ...] = ladder(30 * 86_400, 90 * 86_400)
"""Windows of the default task (horizon 30d, lookback 90d): 7d, 30d, 90d."""

WINDOWED_FAMILIES: tuple[tuple[str, str, FeatureKind], ...] = (
    ("events", "Events in the {w} before the cutoff.", "count"),
    ("purchases", "Purchase lines in the {w} before the cutoff.", "count"),
    ("monetary", "Sum of price x quantity over purchases in the {w} before the cutoff.", "amount"),
)
"""``(prefix, description template, kind)`` of the windowed families: one column per window,
named ``<prefix>_<window_suffix>`` (``events_7d``), family by family, shortest window first."""


def windowed_name(prefix: str, seconds: int) -> str:
    """The column of a windowed family for one window, e.g. ``events_7d``."""
    return f"{prefix}_{window_suffix(seconds)}"


def is_windowed(name: str) -> bool:
    """Whether ``name`` is a windowed-family column (``events_7d``, not ``events_lifetime``)."""
    prefix, _, suffix = name.rpartition("_")
    return (
        any(prefix == family for family, _, _ in WINDOWED_FAMILIES)
        and suffix[:-1].isdigit()
        and suffix[-1:] in ("s", "m", "h", "d")
    )


def widest_window_column(columns: Iterable[str], prefix: str) -> str | None:
    """The column of a windowed family with the longest window (the lookback), if any.

    ``widest_window_column(frame.columns, "events")`` is ``events_90d`` for the default task:
    the family over the whole lookback (the ``events_lookback`` of the v1 catalogue, which
    is taken as it is when present).
    """
    from shopflow.durations import parse_duration

    names = list(columns)
    if f"{prefix}_lookback" in names:
        return f"{prefix}_lookback"
    windowed = [n for n in names if is_windowed(n) and n.rpartition("_")[0] == prefix]
    if not windowed:
        return None
    return max(windowed, key=lambda n: parse_duration(n.rpartition("_")[2]))


def user_feature_catalogue(
    settings: Settings | None = None, *, windows: Sequence[int] | None = None
) -> tuple[Feature, ...]:
    """The user features of a task, in ``marts.user_features`` column order.

    Lifetime features first (every customer with an event at or before the cutoff has a
    row, dormant ones included), then the windowed families over the task's windows, then
    the features over the whole lookback, then the feature families.

    Missing values: ``days_since_first_purchase`` and ``days_since_last_purchase`` are
    NULL when the customer never bought before the cutoff (there is no honest number of
    days since a purchase that never happened); a family feature
    (:data:`FAMILY_FEATURES`, last) is NULL where its description says it is undefined.
    Tree families read NULL (NaN) natively; the baseline and the MLP impute it (median of
    the training rows). Every other user feature is non-null.

    Args:
        settings: the run's settings; the windows are
            :func:`shopflow.features.windows.task_windows` of it.
        windows: the windows in seconds instead (default: :data:`DEFAULT_WINDOWS` when
            neither is given).
    """
    if windows is None:
        windows = task_windows(settings) if settings is not None else DEFAULT_WINDOWS
    windows = tuple(sorted(set(int(w) for w in windows)))
    lifetime = (
        Feature("recency_days", "Days from the customer's last event to the cutoff.",
                "duration", baseline=True),
        Feature("tenure_days",
                "Days from the customer's first event to the cutoff (all history, not only the "
                "lookback).", "duration", baseline=True),
        Feature("days_since_first_purchase",
                "Days from the customer's first purchase to the cutoff (all history); null when "
                "they never bought.", "duration", nullable=True),
        Feature("days_since_last_purchase",
                "Days from the customer's last purchase to the cutoff (all history); null when "
                "they never bought.", "duration", nullable=True, baseline=True),
        Feature("purchases_lifetime", "Purchase lines at or before the cutoff (all history).",
                "count", baseline=True),
        Feature("orders_lifetime",
                "Distinct orders at or before the cutoff (all history; a purchase without an "
                "order id is its own).", "count", baseline=True),
        Feature("purchase_days_lifetime",
                "Distinct days with a purchase at or before the cutoff (all history).", "count"),
        Feature("monetary_lifetime",
                "Sum of price x quantity over purchases at or before the cutoff (all history).",
                "amount", baseline=True),
    )
    windowed = tuple(
        Feature(windowed_name(prefix, w), template.format(w=window_suffix(w)), kind,
                baseline=True)
        for prefix, template, kind in WINDOWED_FAMILIES
        for w in windows
    )
    lookback = (
        Feature("views_lookback", "Product views in the lookback window.", "count"),
        Feature("carts_lookback", "Add-to-cart events in the lookback window.", "count"),
        Feature("returns_lookback", "Return lines in the lookback window.", "count"),
        Feature("orders_lookback",
                "Distinct orders in the lookback window (a purchase without an order id is its "
                "own).", "count"),
        Feature("avg_order_value",
                "Purchase amount in the lookback window / orders_lookback; 0 without orders.",
                "amount", baseline=True),
        Feature("avg_basket_size", "Units purchased / orders_lookback; 0 without orders.",
                "amount"),
        Feature("cart_rate", "carts / (views + carts) in the lookback window; 0 when both are 0.",
                "rate"),
        Feature("conversion_rate",
                "purchases / (views + carts + purchases) in the lookback window; 0 when all are 0.",
                "rate"),
        Feature("return_rate",
                "returns / (purchases + returns) in the lookback window; 0 when both are 0.", "rate"),
        Feature("distinct_items_lookback", "Distinct items touched in the lookback window.",
                "count"),
        Feature("distinct_categories_lookback",
                "Distinct categories touched in the lookback window.", "count"),
        Feature("active_days_lookback", "Days with at least one event in the lookback window.",
                "count"),
        Feature("is_returning_buyer",
                "1.0 when the customer has at least two orders at or before the cutoff (all "
                "history).", "flag"),
    )
    longest = max(windows)
    families = tuple(
        f for f in FAMILY_FEATURES
        if longest >= PROFILE_CYCLES.get(f.name, 0)
    )
    return (*lifetime, *windowed, *lookback, *families)


USER_CATALOGUE: tuple[Feature, ...] = user_feature_catalogue()
"""``marts.user_features`` of the default task, in mart column order (after ``user_id,
cutoff_time``); :func:`user_feature_catalogue` gives any task's."""

ITEM_CATALOGUE: tuple[Feature, ...] = (
    Feature("item_views_lookback", "Views of the item in the lookback window.", "count"),
    Feature("item_carts_lookback", "Add-to-cart events of the item in the lookback window.",
            "count"),
    Feature("item_purchases_lookback", "Purchase lines of the item in the lookback window.",
            "count"),
    Feature("item_buyers_lookback", "Distinct buyers of the item in the lookback window.",
            "count"),
    Feature("item_conversion_rate", "purchases / (views + carts + purchases); 0 when all are 0.",
            "rate"),
    Feature("item_avg_price",
            "Mean unit price of the item in the lookback window; null when no event had one.",
            "price", nullable=True),
    Feature("item_min_price",
            "Lowest unit price of the item in the lookback window; null when no event had one.",
            "price", nullable=True),
    Feature("item_max_price",
            "Highest unit price of the item in the lookback window; null when no event had one.",
            "price", nullable=True),
    Feature("item_popularity_rank",
            "1 = most purchased at this cutoff (ties by buyers, views, item_id). INTEGER.",
            "rank", mart_type="INTEGER"),
)
"""``marts.item_features``, in mart column order (after ``item_id, cutoff_time``)."""

USER_FEATURES: dict[str, str] = {f.name: f.description for f in USER_CATALOGUE}
"""Name -> description of the default task's user features, in mart order."""

ITEM_FEATURES: dict[str, str] = {f.name: f.description for f in ITEM_CATALOGUE}
"""Name -> description of the item features, in mart order (views of the catalogue)."""


@dataclass(frozen=True)
class FeatureTable:
    """A mart that Feast serves: its entity, join key, catalogue entries and file names."""

    name: str
    """Mart table name, e.g. ``user_features``."""
    entity: str
    """Feast entity name, e.g. ``user``."""
    join_key: str
    """Entity column, e.g. ``user_id``."""
    catalogue: tuple[Feature, ...]
    """The table's features, in mart column order."""
    description: str
    legacy: bool = False
    """A frozen mart kept for models trained on an older catalogue (``user_features_v1``).

    Published, exported and materialized like the others; where its snapshot was never
    published (hand-made marts, a home published before it existed) the export and the
    materialization skip it with a warning instead of failing the current tables."""

    @property
    def features(self) -> dict[str, str]:
        """Feature name -> description, in mart column order."""
        return {f.name: f.description for f in self.catalogue}

    @property
    def view_name(self) -> str:
        """The Feast feature view name, e.g. ``user_features_fv`` (docs/ARCHITECTURE.md)."""
        return f"{self.name}_fv"

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.catalogue]

    def feature(self, name: str) -> Feature:
        """The catalogue entry of one feature (KeyError naming the table if unknown)."""
        for feature in self.catalogue:
            if feature.name == name:
                return feature
        raise KeyError(f"{self.name} has no feature {name!r}")

    def names_of(self, *kinds: FeatureKind) -> tuple[str, ...]:
        """The features of the given kinds, in mart column order."""
        return tuple(f.name for f in self.catalogue if f.kind in kinds)

    def mart_path(self, settings: Settings) -> Path:
        """Where ``shopflow.transform.publish_marts`` writes this mart's Parquet snapshot."""
        return settings.data_dir / "marts" / f"{self.name}.parquet"

    def offline_path(self, settings: Settings) -> Path:
        """The validated Parquet file Feast's offline store reads (see ``export_marts``)."""
        return settings.feast_dir / "data" / f"{self.name}.parquet"


USER_TABLE = FeatureTable(
    name="user_features",
    entity="user",
    join_key="user_id",
    catalogue=USER_CATALOGUE,
    description=(
        "Per-user behaviour before each cutoff: lifetime history, the task's windows and the "
        "lookback window; every customer with an event at or before the cutoff has a row."
    ),
)
"""``marts.user_features`` for the default task; :func:`user_table` gives a run's."""
ITEM_TABLE = FeatureTable(
    name="item_features",
    entity="item",
    join_key="item_id",
    catalogue=ITEM_CATALOGUE,
    description="Per-item demand and price over the lookback window before each cutoff.",
)
USER_V1_TABLE = FeatureTable(
    name="user_features_v1",
    entity="user",
    join_key="user_id",
    catalogue=LEGACY_USER_CATALOGUE,
    description=(
        "Per-user behaviour in the lookback window before each cutoff, the fixed 7d/30d list "
        "of propensity_v1 (frozen); every customer with an event in the lookback has a row."
    ),
    legacy=True,
)
"""``marts.user_features_v1``: the v1 catalogue, behind feature service ``propensity_v1``."""
FEATURE_TABLES: tuple[FeatureTable, ...] = (USER_TABLE, ITEM_TABLE, USER_V1_TABLE)
"""The tables of the default task; :func:`feature_tables` gives a run's."""


def user_table(settings: Settings) -> FeatureTable:
    """``marts.user_features`` as this run's task builds it (its windows, its features)."""
    catalogue = user_feature_catalogue(settings)
    if catalogue == USER_TABLE.catalogue:
        return USER_TABLE
    return replace(USER_TABLE, catalogue=catalogue)


def feature_tables(settings: Settings) -> tuple[FeatureTable, ...]:
    """The feature tables Feast serves for this run's task (the legacy v1 table last)."""
    return (user_table(settings), ITEM_TABLE, USER_V1_TABLE)


PROPENSITY_V1 = "propensity_v1"
"""Feature service of :data:`LEGACY_USER_CATALOGUE` (the fixed 7d/30d feature list)."""
PROPENSITY_V2 = "propensity_v2"
"""Feature service of the task-generated catalogue (:func:`user_feature_catalogue`)."""


def propensity_service_name(catalogue: Sequence[Feature]) -> str:
    """The versioned feature service of a user catalogue.

    ``propensity_v1`` is exactly the legacy list; any catalogue whose feature set differs
    from it is ``propensity_v2`` (the task-generated one). A model records this name, so a
    champion trained on v1 is served through v1 and never reads v2's columns.
    """
    names = [f.name for f in catalogue]
    if names == [f.name for f in LEGACY_USER_CATALOGUE]:
        return PROPENSITY_V1
    return PROPENSITY_V2

LABELS_TABLE = "purchase_labels"
"""Mart with ``user_id, cutoff_time, label, label_window_end`` at training cutoffs."""


def table_by_name(name: str) -> FeatureTable:
    """Look up a feature table by mart or view name, with an error listing the known ones."""
    for table in FEATURE_TABLES:
        if table.name == name:
            return table
    known = ", ".join(t.name for t in FEATURE_TABLES)
    raise KeyError(f"unknown feature table {name!r}; known: {known}")
