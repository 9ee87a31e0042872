"""One conversion of Shopflow's values into JSON types, for ledger rows, XCom and records.

Ledger columns, model metadata, stage results and run records all end up as JSON, and
they hold the same kinds of values: numpy scalars, NaN metrics, timestamps, paths and the
result objects of other parts (dataclasses, pydantic models, objects with ``to_dict``).
Converting them in one place means a value is written the same way wherever it lands.

A leaf module: it imports nothing from Shopflow.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def jsonable(value: Any) -> Any:
    """``value`` as JSON types (dict, list, str, int, float, bool, None).

    * numpy scalars become Python numbers; NaN and infinities become ``None`` (JSON has
      no NaN, and a missing metric must read as missing);
    * datetimes become ISO 8601 in UTC with an explicit offset (naive ones are UTC);
    * mappings, sequences and sets recurse (keys become strings);
    * objects with ``to_dict``, pydantic models and dataclasses become their fields;
    * paths and anything else become ``str``.
    """
    if value is None or isinstance(value, bool | int | str) and not _is_numpy(value):
        return value
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", 1) == 0:
        value = item()  # numpy scalar -> Python scalar
        if value is None or isinstance(value, bool | int | str):
            return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime):
        utc = value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return utc.isoformat()
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return jsonable(to_dict())
    model_dump = getattr(value, "model_dump", None)
    if callable(model_dump):
        return jsonable(model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return isoformat()  # dates and times
    return str(value)


def _is_numpy(value: Any) -> bool:
    """numpy's bool/int/str scalars subclass nothing or the Python type; convert them."""
    return type(value).__module__ == "numpy"
