"""The feature tables Feast serves: column names, descriptions and file locations.

One place lists the mart columns (docs/ARCHITECTURE.md, "marts") that become Feast
features, so the Feast definitions, the Parquet export, the fast materializer and the
tests cannot disagree about names. Pure Python: importing this module never imports
Feast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from shopflow.settings import Settings

TIMESTAMP_FIELD = "cutoff_time"
"""Event timestamp of every feature row: the cutoff the row describes."""

CREATED_FIELD = "created_at"
"""When the row became known. Optional in the marts; defaults to ``cutoff_time``."""

USER_FEATURES: dict[str, str] = {
    "recency_days": "Days from the last event of any kind to the cutoff.",
    "days_since_last_purchase": "Days from the last purchase to the cutoff (lookback if none).",
    "tenure_days": "Days from the user's first event to the cutoff.",
    "events_7d": "Events in the 7 days before the cutoff.",
    "events_30d": "Events in the 30 days before the cutoff.",
    "events_lookback": "Events in the lookback window.",
    "views_lookback": "Product views in the lookback window.",
    "carts_lookback": "Add-to-cart events in the lookback window.",
    "purchases_7d": "Purchase lines in the 7 days before the cutoff.",
    "purchases_30d": "Purchase lines in the 30 days before the cutoff.",
    "purchases_lookback": "Purchase lines in the lookback window.",
    "returns_lookback": "Return lines in the lookback window.",
    "orders_lookback": "Distinct orders in the lookback window.",
    "monetary_30d": "Spend (price x quantity) in the 30 days before the cutoff.",
    "monetary_lookback": "Spend in the lookback window.",
    "avg_order_value": "Spend per order in the lookback window.",
    "avg_basket_size": "Items per order in the lookback window.",
    "cart_rate": "Carts per view in the lookback window.",
    "conversion_rate": "Purchases per view in the lookback window.",
    "return_rate": "Returns per purchase in the lookback window.",
    "distinct_items_lookback": "Distinct items touched in the lookback window.",
    "distinct_categories_lookback": "Distinct categories touched in the lookback window.",
    "active_days_lookback": "Days with at least one event in the lookback window.",
    "is_returning_buyer": "1 if the user bought in more than one order, else 0.",
}

ITEM_FEATURES: dict[str, str] = {
    "item_views_lookback": "Views of the item in the lookback window.",
    "item_carts_lookback": "Add-to-cart events of the item in the lookback window.",
    "item_purchases_lookback": "Purchase lines of the item in the lookback window.",
    "item_buyers_lookback": "Distinct buyers of the item in the lookback window.",
    "item_conversion_rate": "Purchases per view of the item in the lookback window.",
    "item_avg_price": "Mean unit price of the item in the lookback window.",
    "item_min_price": "Lowest unit price of the item in the lookback window.",
    "item_max_price": "Highest unit price of the item in the lookback window.",
    "item_popularity_rank": "Rank of the item by purchases at the cutoff (1 = most bought).",
}


@dataclass(frozen=True)
class FeatureTable:
    """A mart that Feast serves: its entity, join key, features and file names."""

    name: str
    """Mart table name, e.g. ``user_features``."""
    entity: str
    """Feast entity name, e.g. ``user``."""
    join_key: str
    """Entity column, e.g. ``user_id``."""
    features: dict[str, str]
    """Feature name -> description, in mart column order."""
    description: str

    @property
    def view_name(self) -> str:
        """The Feast feature view name, e.g. ``user_features_fv`` (docs/ARCHITECTURE.md)."""
        return f"{self.name}_fv"

    @property
    def feature_names(self) -> list[str]:
        return list(self.features)

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
    features=USER_FEATURES,
    description="Per-user behaviour over the lookback window before each cutoff.",
)
ITEM_TABLE = FeatureTable(
    name="item_features",
    entity="item",
    join_key="item_id",
    features=ITEM_FEATURES,
    description="Per-item demand and price over the lookback window before each cutoff.",
)
FEATURE_TABLES: tuple[FeatureTable, ...] = (USER_TABLE, ITEM_TABLE)

LABELS_TABLE = "purchase_labels"
"""Mart with ``user_id, cutoff_time, label, label_window_end`` at training cutoffs."""


def table_by_name(name: str) -> FeatureTable:
    """Look up a feature table by mart or view name, with an error listing the known ones."""
    for table in FEATURE_TABLES:
        if table.name == name:
            return table
    known = ", ".join(t.name for t in FEATURE_TABLES)
    raise KeyError(f"unknown feature table {name!r}; known: {known}")
