"""The model registry: Shopflow models in the BentoML model store.

``save_model(settings, model, metadata=..., compiled=None) -> version``,
``load_model(settings, version)``, ``load_compiled(settings, version)`` (the compiled
predictor stored beside it, or None) and ``list_models(settings)``; ``model_digests(settings,
version)`` are the file digests the ledger records at registration, and every load checks
them first (``ModelTampered``: refused, see :mod:`shopflow.registry.digest`);
``use_model_store(settings)`` points BentoML at ``settings.bentoml_home`` (call it before
any other BentoML store access).
"""

from __future__ import annotations

from shopflow.registry.store import (
    COMPILED_FILE,
    MODEL_FILE,
    MODEL_NAME,
    ModelLoadError,
    ModelTampered,
    StoredModel,
    code_version,
    list_models,
    load_compiled,
    load_model,
    model_digests,
    model_info,
    save_model,
    use_model_store,
)

__all__ = [
    "COMPILED_FILE",
    "MODEL_FILE",
    "MODEL_NAME",
    "ModelLoadError",
    "ModelTampered",
    "StoredModel",
    "code_version",
    "list_models",
    "load_compiled",
    "load_model",
    "model_digests",
    "model_info",
    "save_model",
    "use_model_store",
]
