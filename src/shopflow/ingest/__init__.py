"""Raw events in: the synthetic generator and the ingestion of CSV/Parquet sources.

Public entry points (imported lazily, so ``import shopflow.ingest`` stays cheap):

- :func:`shopflow.ingest.loader.ingest_source` -- load ``settings.source`` into
  ``raw.raw_events`` (re-exported here as ``ingest_source``);
- :func:`shopflow.ingest.generator.generate_events` -- write synthetic events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shopflow.lazy_exports import lazy_export

if TYPE_CHECKING:
    from shopflow.ingest.generator import GenerationSummary, generate_events
    from shopflow.ingest.loader import IngestError, IngestSummary, ingest_source

__all__ = ["GenerationSummary", "IngestError", "IngestSummary", "generate_events", "ingest_source"]

_EXPORTS = {
    "GenerationSummary": "shopflow.ingest.generator",
    "generate_events": "shopflow.ingest.generator",
    "IngestError": "shopflow.ingest.loader",
    "IngestSummary": "shopflow.ingest.loader",
    "ingest_source": "shopflow.ingest.loader",
}


def __getattr__(name: str) -> Any:
    return lazy_export(__name__, _EXPORTS, name)
