"""Package attributes imported from their module on first use (PEP 562).

Several packages re-export names whose modules import heavy libraries (GX, Feast, torch,
BentoML). Importing those only when a name is first read keeps ``import shopflow.x`` and
``shopflow --help`` fast, and a broken optional component from breaking unrelated code.
Each package's ``__getattr__`` hands its table to :func:`lazy_export`.

A leaf module: it imports nothing from Shopflow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping


def lazy_export(package: str, exports: Mapping[str, str], name: str) -> Any:
    """``name`` from the module ``exports`` maps it to, for ``package.__getattr__``.

    Raises:
        AttributeError: ``name`` is not one of the package's exports (as Python would).
    """
    module = exports.get(name)
    if module is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
