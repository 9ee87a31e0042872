"""Compiled inference: trained models as numpy arrays, checked against their libraries.

Produced at registration (``compile_checked``), stored beside the model in the model store
(``compiled.pkl``) and used by the service for small batches, where the libraries' fixed
cost per call dominates; the swap check compares it with the library again before it
serves. ``compile_model``, ``probe_rows``, ``max_difference`` and ``TOLERANCE`` are the
pieces both checks share.
"""

from __future__ import annotations

from shopflow.training.compiled.compile import (
    COMPILED,
    LIBRARY,
    TOLERANCE,
    Compilation,
    CompiledPredictor,
    compile_checked,
    compile_model,
    max_difference,
    probe_rows,
)
from shopflow.training.compiled.trees import NotCompilable

__all__ = [
    "COMPILED",
    "LIBRARY",
    "TOLERANCE",
    "CompiledPredictor",
    "Compilation",
    "NotCompilable",
    "compile_checked",
    "compile_model",
    "max_difference",
    "probe_rows",
]
