"""Candidate model families, one module each, behind one small interface.

Each family module offers ``default_params(ctx)``, ``sample_params(rng, ctx)`` and
``fit(data, params, ctx) -> Fitted``; :mod:`shopflow.training.search` drives them.
Optional module attributes: ``SEARCH_TRIALS`` (at most this many trials: 1 for a family
with nothing to search) and ``REQUIRED_FEATURES`` (columns the family reads by name, which
the train-time feature pruning never drops).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import ModuleType

FAMILY_MODULES = {
    "baseline": "shopflow.training.families.baseline",
    "bgnbd": "shopflow.training.families.bgnbd",
    "xgboost": "shopflow.training.families.xgb",
    "lightgbm": "shopflow.training.families.lgbm",
    "torch": "shopflow.training.families.mlp",
}


def family_module(family: str) -> ModuleType:
    """The module implementing ``family`` (imported on demand: torch is heavy)."""
    if family not in FAMILY_MODULES:
        raise ValueError(f"unknown model family {family!r}; expected one of {list(FAMILY_MODULES)}")
    return importlib.import_module(FAMILY_MODULES[family])
