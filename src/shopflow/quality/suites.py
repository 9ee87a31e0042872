"""Load the suites in ``expectations/`` (repository root) and build them for a gate run.

``expectations/`` is reviewed code but not an installed package, like ``dags/`` and
``feature_repo/``; it is imported from its path under a private package name so its
modules can import each other. Found next to ``src/`` in a checkout, or wherever
``SHOPFLOW_EXPECTATIONS_DIR`` points.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from shopflow.quality.result import QualityError

if TYPE_CHECKING:
    from types import ModuleType

_PACKAGE = "shopflow_expectations"


def expectations_dir() -> Path:
    """Where the suites live (``SHOPFLOW_EXPECTATIONS_DIR`` or ``<repo>/expectations``)."""
    configured = os.environ.get("SHOPFLOW_EXPECTATIONS_DIR")
    if configured:
        return Path(configured).expanduser().resolve()
    return Path(__file__).resolve().parents[3] / "expectations"


@cache
def _package(directory: Path) -> ModuleType:
    init = directory / "__init__.py"
    if not init.is_file():
        raise QualityError(
            f"expectation suites not found at {directory} (no __init__.py); run from a "
            "checkout or set SHOPFLOW_EXPECTATIONS_DIR"
        )
    spec = importlib.util.spec_from_file_location(
        _PACKAGE, init, submodule_search_locations=[str(directory)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[_PACKAGE] = module
    spec.loader.exec_module(module)
    return module


def load(name: str) -> ModuleType:
    """One module of ``expectations/`` (``raw``, ``staging``, ``marts``, ``batch``, ...)."""
    _package(expectations_dir())
    return importlib.import_module(f"{_PACKAGE}.{name}")
