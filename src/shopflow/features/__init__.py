"""Feast feature store: definitions, offline training sets, materialization, online reads.

The public functions are imported lazily (Feast is heavy), so ``import shopflow.features``
costs nothing until one is used:

- :func:`export_marts` — validated Parquet snapshots of the marts for Feast;
- :func:`apply` — register entities, sources, views and services;
- :func:`build_training_set` — point-in-time-correct training frames;
- :func:`materialize` — incremental, idempotent bulk load of the online store;
- :func:`get_online_user_features` / :func:`get_online_item_features` — batch reads;
- :func:`get_store` — a configured ``FeatureStore``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shopflow.lazy_exports import lazy_export

_EXPORTS = {
    "export_marts": "shopflow.features.export",
    "ExportResult": "shopflow.features.export",
    "MartExportError": "shopflow.features.export",
    "DuplicateFeatureRowsError": "shopflow.features.export",
    "apply_definitions": "shopflow.features.store",
    "get_store": "shopflow.features.store",
    "shared_store": "shopflow.features.store",
    "build_definitions": "shopflow.features.definitions",
    "build_training_set": "shopflow.features.training",
    "load_label_entities": "shopflow.features.training",
    "EntityFrameError": "shopflow.features.training",
    "materialize": "shopflow.features.materialization",
    "MaterializeResult": "shopflow.features.materialization",
    "get_watermark": "shopflow.features.materialization",
    "get_online_user_features": "shopflow.features.online",
    "get_online_item_features": "shopflow.features.online",
}

__all__ = sorted([*_EXPORTS, "apply", "ApplyResult"])


@dataclass(frozen=True)
class ApplyResult:
    """What :func:`apply` did, in JSON-friendly types (the pipeline records it)."""

    project: str
    objects: list[str]
    """Names of the registered entities, sources, views and services."""
    exported: list[dict[str, Any]] = field(default_factory=list)
    """Per mart: rows read/written, duplicates collapsed, corrections (empty: not published)."""


def apply(settings: Any, **kwargs: Any) -> ApplyResult:
    """Export the marts (when published) and register the Feast objects.

    Args:
        settings: the run's settings.
        **kwargs: passed to :func:`shopflow.features.store.apply_definitions` (``store``).
    """
    from dataclasses import asdict

    from shopflow.features.export import export_marts
    from shopflow.features.schema import FEATURE_TABLES
    from shopflow.features.store import apply_definitions

    exported: list[dict[str, Any]] = []
    # the frozen v1 mart is exported when published, never required (FeatureTable.legacy)
    if all(t.mart_path(settings).is_file() for t in FEATURE_TABLES if not t.legacy):
        exported = [asdict(t) for t in export_marts(settings).tables]
    definitions = apply_definitions(settings, **kwargs)
    return ApplyResult(
        project=settings.features.project,
        objects=[obj.name for obj in definitions.objects()],
        exported=exported,
    )


def __getattr__(name: str) -> Any:
    return lazy_export(__name__, _EXPORTS, name)
