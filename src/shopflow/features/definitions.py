"""The Feast objects of Shopflow, built from settings by one function.

Both entry points use :func:`build_definitions`: the Python API
(:func:`shopflow.features.store.apply_definitions`) and ``feast apply`` in
``feature_repo/`` (whose modules pick attributes of :func:`repo_definitions`). So the
registry holds the same entities, sources, views and services whichever way they were
applied, and the TTL and file paths always follow the run's settings.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shopflow.contract import PROPENSITY_MODEL
from shopflow.features.schema import (
    CREATED_FIELD,
    ITEM_TABLE,
    PROPENSITY_V1,
    PROPENSITY_V2,
    TIMESTAMP_FIELD,
    USER_TABLE,
    USER_V1_TABLE,
    FeatureTable,
    propensity_service_name,
    user_table,
)

if TYPE_CHECKING:
    from feast import Entity, FeatureService, FeatureView, FileSource

    from shopflow.settings import Settings

OWNER = "shopflow"
PROPENSITY_SERVICE = PROPENSITY_V2
"""All user features of the run's task: the feature service new propensity models record.

Versioned by catalogue (``shopflow.features.schema.propensity_service_name``):
``propensity_v1`` was the fixed 7d/30d list (``LEGACY_USER_CATALOGUE``); ``propensity_v2``
is the task-generated catalogue that ``marts.user_features`` now holds."""
LEGACY_PROPENSITY_SERVICE = PROPENSITY_V1
"""The fixed 7d/30d list over ``marts.user_features_v1`` (frozen): a champion trained on it
is still served and scored through it in gate 2."""
ITEM_SERVICE = "item_ranking_v1"
"""All item features: for ranking items in ``/recommend``."""


@dataclass(frozen=True)
class FeatureDefinitions:
    """Every Feast object of the project, by role."""

    user: Entity
    item: Entity
    user_features_source: FileSource
    item_features_source: FileSource
    user_features_fv: FeatureView
    item_features_fv: FeatureView
    propensity_v2: FeatureService
    item_ranking_v1: FeatureService
    user_features_v1_source: FileSource
    user_features_v1_fv: FeatureView
    propensity_v1: FeatureService

    def objects(self) -> list[Any]:
        """All objects, in the order ``FeatureStore.apply`` takes them."""
        return [
            self.user,
            self.item,
            self.user_features_source,
            self.item_features_source,
            self.user_features_fv,
            self.item_features_fv,
            self.propensity_v2,
            self.item_ranking_v1,
            self.user_features_v1_source,
            self.user_features_v1_fv,
            self.propensity_v1,
        ]

    def view_for(self, table: FeatureTable) -> FeatureView:
        """The feature view that serves a mart."""
        views = {USER_TABLE.name: self.user_features_fv, ITEM_TABLE.name: self.item_features_fv,
                 USER_V1_TABLE.name: self.user_features_v1_fv}
        return views[table.name]


def _entity(table: FeatureTable, description: str) -> Entity:
    from feast import Entity, ValueType

    return Entity(
        name=table.entity,
        join_keys=[table.join_key],
        value_type=ValueType.STRING,
        description=description,
        tags={"owner": OWNER, "id_type": "text"},
        owner=OWNER,
    )


def _source(settings: Settings, table: FeatureTable) -> FileSource:
    from feast import FileSource
    from feast.data_format import ParquetFormat

    return FileSource(
        name=f"{table.name}_source",
        path=str(table.offline_path(settings)),
        file_format=ParquetFormat(),
        timestamp_field=TIMESTAMP_FIELD,
        created_timestamp_column=CREATED_FIELD,
        description=(
            f"Validated Parquet snapshot of marts.{table.name} (written by "
            "shopflow.features.export_marts); one row per entity and cutoff."
        ),
        tags={"owner": OWNER, "mart": table.name, "layer": "marts"},
        owner=OWNER,
    )


def _view(settings: Settings, table: FeatureTable, entity: Entity, source: FileSource) -> FeatureView:
    from feast import FeatureView, Field
    from feast.types import Float64

    lookback_days = settings.task.lookback.total_seconds() / 86_400
    return FeatureView(
        name=table.view_name,
        entities=[entity],
        ttl=settings.task.lookback,
        schema=[
            # every feature is Float64: export_marts casts the mart columns to DOUBLE
            Field(
                name=feature.name,
                dtype=Float64,
                description=feature.description,
                tags={"mart": table.name, "entity": table.entity},
            )
            for feature in table.catalogue
        ],
        source=source,
        online=True,
        description=(
            f"{table.description} A value is valid for the lookback "
            f"({lookback_days:g} days) after its cutoff: the view's TTL."
        ),
        tags={"owner": OWNER, "mart": table.name, "entity": table.entity},
        owner=OWNER,
    )


def build_definitions(settings: Settings) -> FeatureDefinitions:
    """Build the entities, sources, feature views and services for a run's settings.

    Args:
        settings: the run's settings; the views' TTL is ``settings.task.lookback`` and
            the sources read ``settings.feast_dir / "data"``.

    Returns:
        Fresh Feast objects (safe to apply to any store of this project).
    """
    from feast import FeatureService

    users = user_table(settings)
    user = _entity(users, "A shopper (raw_events.user_id, always text).")
    item = _entity(ITEM_TABLE, "A product (raw_events.item_id, always text).")
    user_source = _source(settings, users)
    item_source = _source(settings, ITEM_TABLE)
    user_fv = _view(settings, users, user, user_source)
    item_fv = _view(settings, ITEM_TABLE, item, item_source)
    service_name = propensity_service_name(users.catalogue)
    propensity = FeatureService(
        name=service_name,
        features=[user_fv],
        description=(
            "Inputs of the purchase-propensity models (v2: every user feature of the task's "
            "catalogue: lifetime, the task's windows, the lookback)."
        ),
        tags={"owner": OWNER, "model": PROPENSITY_MODEL, "version": service_name.rsplit("_v", 1)[1]},
        owner=OWNER,
    )
    user_v1_source = _source(settings, USER_V1_TABLE)
    user_v1_fv = _view(settings, USER_V1_TABLE, user, user_v1_source)
    propensity_v1 = FeatureService(
        name=LEGACY_PROPENSITY_SERVICE,
        features=[user_v1_fv],
        description=(
            "Inputs of the purchase-propensity models trained on v1: the fixed 7d/30d list "
            "(LEGACY_USER_CATALOGUE) over marts.user_features_v1, kept for their champions."
        ),
        tags={"owner": OWNER, "model": PROPENSITY_MODEL, "version": "1"},
        owner=OWNER,
    )
    item_ranking = FeatureService(
        name=ITEM_SERVICE,
        features=[item_fv],
        description="Item features for ranking recommendations (v1: every item feature).",
        tags={"owner": OWNER, "model": "item_ranking", "version": "1"},
        owner=OWNER,
    )
    return FeatureDefinitions(
        user=user,
        item=item,
        user_features_source=user_source,
        item_features_source=item_source,
        user_features_fv=user_fv,
        item_features_fv=item_fv,
        propensity_v2=propensity,
        item_ranking_v1=item_ranking,
        user_features_v1_source=user_v1_source,
        user_features_v1_fv=user_v1_fv,
        propensity_v1=propensity_v1,
    )


@functools.cache
def repo_definitions() -> FeatureDefinitions:
    """The definitions for ``feast apply`` in ``feature_repo/`` (settings from the environment).

    Cached so that every module of the repo hands Feast the *same* objects: Feast drops
    duplicates by identity, and would otherwise see each object once per module.
    """
    from shopflow.settings import load_settings

    return build_definitions(load_settings())
