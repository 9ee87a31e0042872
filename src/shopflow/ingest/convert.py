"""Turn rows of text into rows of the event contract, and say why for every row that fails.

docs/DESIGN.md §2 is the contract. Each chunk comes out as two frames: the good rows, typed and
in canonical columns, and the quarantined rows with their original text and one reason code
(the first problem found, in the order of :data:`REASONS`). Every input row lands in
exactly one of the two, which is what lets ingestion promise
``rows_read == rows_ingested + rows_quarantined``.

Rules worth knowing:

- ids: whitespace trimmed; empty means missing; a float-looking id such as ``17850.0``
  (what spreadsheet exports do to integer ids) becomes ``17850``; leading zeros are kept.
- ``event_type``: ``source.event_types`` maps file values first; unmapped values that are
  already canonical (any case) pass; anything else is ``unknown_event_type``. With no
  event_type column every row is a ``purchase``. A purchase with negative quantity is a
  ``return``; a return with positive quantity gets its sign flipped (returns are negative).
- ``event_time``: epoch numbers when ``source.time_unit`` is set, ``source.time_format`` when
  given, otherwise ISO-8601-like strings; naive times are in ``source.timezone``; stored as
  naive UTC.
- ``price``: optional; must be a number >= 0 (zero is kept: free items, adjustments).
- ``quantity``: optional, default 1; must be a non-zero whole number that fits 32 bits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from shopflow.ingest.sources import IngestError
from shopflow.settings import CANONICAL_COLUMNS, EVENT_TYPES

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np
    import pandas as pd

    from shopflow.ingest.sources import Chunk
    from shopflow.settings import SourceSettings

logger = logging.getLogger(__name__)

REQUIRED = ("user_id", "item_id", "event_time")
ID_COLUMNS = ("user_id", "item_id", "order_id", "category_id")
#: Reason codes, in the order they are checked (a row gets the first that applies).
REASONS = (
    "malformed_row",
    "missing_user_id",
    "missing_item_id",
    "unparseable_event_time",
    "unknown_event_type",
    "invalid_price",
    "invalid_quantity",
)
_INT32_MAX = 2**31 - 1
_TEXT: Final = "string[pyarrow]"  # Arrow-backed strings: vectorised ops, pd.NA for missing
# A column none of whose first values parse is a mapping or format mistake, not bad rows.
_MIN_VALUES_FOR_COLUMN_CHECK = 10


def plan_columns(file_columns: list[str], source: SourceSettings, path: Path) -> dict[str, str]:
    """Canonical column -> file column, for the canonical columns this file has.

    Mapped names (``source.columns``) must exist; unmapped canonical names match a file
    column of the same name (case-insensitively).

    Raises:
        IngestError: a mapped column is missing, or a required column has no match; the
            message lists the columns the file has.
    """
    found = ", ".join(file_columns) or "(none)"
    by_lower = {name.lower(): name for name in file_columns}
    plan: dict[str, str] = {}
    for canonical, column in source.columns.items():
        if column not in file_columns:
            raise IngestError(
                f"{path}: source.columns maps {canonical} to column {column!r}, which the file "
                f"does not have; found columns: {found}"
            )
        plan[canonical] = column
    for canonical in CANONICAL_COLUMNS:
        if canonical not in plan and canonical in by_lower:
            plan[canonical] = by_lower[canonical]
    missing = [name for name in REQUIRED if name not in plan]
    if missing:
        hint = "; map them with source.columns" if file_columns else ""
        if source.header is None and file_columns and _looks_like_data(file_columns):
            hint = "; the first row looks like data: give the names with source.header"
        raise IngestError(
            f"{path}: missing required column(s) {', '.join(missing)}; found columns: {found}{hint}"
        )
    return plan


def _looks_like_data(columns: list[str]) -> bool:
    import re

    return sum(bool(re.fullmatch(r"[\d.:\- T]+", name)) for name in columns) >= 2


@dataclass
class Converted:
    """The outcome of one chunk: typed good rows, and quarantined rows with reasons."""

    good: pd.DataFrame  # canonical columns + source_row
    bad: pd.DataFrame  # source_row, reason, canonical columns as text, raw_record


def convert_chunk(chunk: Chunk, plan: dict[str, str], source: SourceSettings, path: Path,
                  *, check_columns: bool = False) -> Converted:
    """Validate and convert one chunk (see the module docstring for the rules)."""
    import numpy as np
    import pandas as pd

    frame = chunk.frame
    n = len(frame)
    reason = np.full(n, None, dtype=object)

    def flag(mask: np.ndarray, code: str) -> None:
        reason[mask & (reason == None)] = code  # noqa: E711 - elementwise on object array

    ids = {name: _clean_ids(frame[plan[name]]) if name in plan else None for name in ID_COLUMNS}
    flag(ids["user_id"].isna().to_numpy(), "missing_user_id")  # type: ignore[union-attr]
    flag(ids["item_id"].isna().to_numpy(), "missing_item_id")  # type: ignore[union-attr]

    raw_time = frame[plan["event_time"]]
    event_time = parse_times(raw_time, source)
    unparsed = event_time.isna().to_numpy()
    if check_columns:
        _check_column(raw_time, ~unparsed, "event_time", plan, path,
                      "set source.time_unit (s|ms) for epoch numbers or source.time_format")
    flag(unparsed, "unparseable_event_time")

    quantity, bad_quantity = _parse_quantity(frame[plan["quantity"]] if "quantity" in plan else None, n)
    if "event_type" in plan:
        event_type = _map_event_types(frame[plan["event_type"]], source)
        flag(event_type.isna().to_numpy(), "unknown_event_type")
    else:
        event_type = pd.Series(np.full(n, "purchase", dtype=object), index=frame.index)

    if "price" in plan:
        raw_price = frame[plan["price"]]
        price = pd.to_numeric(raw_price, errors="coerce").astype("float64")
        unreadable = raw_price.notna().to_numpy() & ~np.isfinite(price.to_numpy(na_value=np.nan))
        if check_columns:
            _check_column(raw_price, raw_price.notna().to_numpy() & ~unreadable, "price", plan, path,
                          "is the right column mapped to price?")
        flag(unreadable | (price.to_numpy(na_value=0.0) < 0), "invalid_price")
    else:
        price = pd.Series(np.full(n, np.nan), index=frame.index)
    if check_columns and "quantity" in plan:
        raw_q = frame[plan["quantity"]]
        _check_column(raw_q, raw_q.notna().to_numpy() & ~bad_quantity, "quantity", plan, path,
                      "is the right column mapped to quantity?")
    flag(bad_quantity, "invalid_quantity")

    # Returns carry negative quantities; a purchase with a negative quantity is a return.
    q = quantity.to_numpy()
    kind = event_type.to_numpy(dtype=object)
    kind = np.where((kind == "purchase") & (q < 0), "return", kind)
    q = np.where((kind == "return") & (q > 0), -q, q)

    ok = reason == None  # noqa: E711
    good = pd.DataFrame({
        "user_id": _text_array(ids["user_id"], n)[ok],
        "item_id": _text_array(ids["item_id"], n)[ok],
        "event_type": pd.array(kind[ok], dtype=_TEXT),
        "event_time": event_time.to_numpy()[ok],
        "price": price.to_numpy(dtype="float64", na_value=np.nan)[ok],
        "quantity": pd.array(q[ok], dtype="Int32"),
        "order_id": _text_array(ids["order_id"], n)[ok],
        "category_id": _text_array(ids["category_id"], n)[ok],
        "source_row": np.asarray(chunk.rows, dtype=np.int64)[ok],
    })
    bad = _quarantined(frame, plan, reason, ~ok, chunk)
    return Converted(good=good, bad=bad)


def _check_column(raw: pd.Series, parsed: np.ndarray, canonical: str, plan: dict[str, str],
                  path: Path, hint: str) -> None:
    present = raw.notna().to_numpy()
    if present.sum() >= _MIN_VALUES_FOR_COLUMN_CHECK and not parsed.any():
        samples = ", ".join(repr(str(v)) for v in raw[present].head(3))
        raise IngestError(
            f"{path}: no value of column {plan[canonical]!r} (mapped to {canonical}) could be "
            f"read, e.g. {samples}; {hint}"
        )


def _text_array(series: pd.Series | None, n: int) -> pd.api.extensions.ExtensionArray:
    import pandas as pd

    if series is None:
        return pd.array([None] * n, dtype=_TEXT)
    return series.astype(_TEXT).array


def _clean_ids(raw: pd.Series) -> pd.Series:
    """Trim, treat empty as missing, and undo float formatting of integer ids (17850.0)."""
    text = raw.astype(_TEXT).str.strip()
    text = text.mask(text == "")
    floaty = text.str.fullmatch(r"[+-]?\d+\.0+").fillna(False).astype(bool)
    if floaty.any():
        text = text.mask(floaty, text.str.replace(r"\.0+$", "", regex=True))
    return text


def _map_event_types(raw: pd.Series, source: SourceSettings) -> pd.Series:
    values = raw.astype(_TEXT).str.strip()
    mapped = values.map(source.event_types) if source.event_types else values.map({})
    lowered = values.str.lower()
    canonical = lowered.where(lowered.isin(EVENT_TYPES))
    result = mapped.astype(object).where(mapped.notna(), canonical.astype(object))
    return _none_for_missing(result)


def _parse_quantity(raw: pd.Series | None, n: int) -> tuple[pd.Series, np.ndarray]:
    import numpy as np
    import pandas as pd

    if raw is None:
        return pd.Series(np.ones(n, dtype=np.int64)), np.zeros(n, dtype=bool)
    number = pd.to_numeric(raw, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    present = raw.notna().to_numpy()
    with np.errstate(invalid="ignore"):
        whole = np.isfinite(number) & (number == np.round(number))
        bad = present & (~whole | (number == 0) | (np.abs(number) > _INT32_MAX))
    value = np.where(present & ~bad, np.nan_to_num(number), 1).astype(np.int64)
    return pd.Series(value), bad


def parse_times(raw: pd.Series, source: SourceSettings) -> pd.Series:
    """Parse event times to naive UTC (``NaT`` where a value cannot be read)."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        return _to_naive_utc(raw, source.timezone)
    if source.time_unit is not None and pd.api.types.is_numeric_dtype(raw.dtype):
        parsed = pd.to_datetime(raw, unit=source.time_unit, errors="coerce", utc=True)
        return parsed.dt.tz_localize(None)
    text = raw.astype(_TEXT).str.strip()
    if source.time_unit is not None:
        number = pd.to_numeric(text, errors="coerce")
        parsed = pd.to_datetime(number, unit=source.time_unit, errors="coerce", utc=True)
        return parsed.dt.tz_localize(None)
    if source.time_format is not None:
        parsed = pd.to_datetime(text, format=source.time_format, errors="coerce")
        return _to_naive_utc(parsed, source.timezone)
    return _parse_iso(text, source.timezone)


def _parse_iso(text: pd.Series, timezone: str) -> pd.Series:
    """ISO-8601-like strings; those with an offset or ``Z`` are exact, the rest are local."""
    import pandas as pd

    if timezone.upper() == "UTC":  # one pass: naive strings are UTC already
        parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
        return parsed.dt.tz_localize(None)
    result = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    aware = text.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})$", regex=True).fillna(False).to_numpy()
    naive = text.notna().to_numpy() & ~aware
    if naive.any():
        parsed = pd.to_datetime(text[naive], format="ISO8601", errors="coerce")
        result[naive] = _to_naive_utc(parsed, timezone).astype("datetime64[ns]")
    if aware.any():
        parsed = pd.to_datetime(text[aware], format="ISO8601", errors="coerce", utc=True)
        result[aware] = parsed.dt.tz_localize(None).astype("datetime64[ns]")
    return result


def _to_naive_utc(values: pd.Series, timezone: str) -> pd.Series:
    import numpy as np

    if timezone.upper() == "UTC" and values.dt.tz is None:
        return values
    aware = values if values.dt.tz is not None else values.dt.tz_localize(
        timezone, ambiguous=np.zeros(len(values), dtype=bool), nonexistent="shift_forward"
    )
    naive: pd.Series = aware.dt.tz_convert("UTC").dt.tz_localize(None)
    return naive


def _quarantined(frame: pd.DataFrame, plan: dict[str, str], reason: np.ndarray,
                 mask: np.ndarray, chunk: Chunk) -> pd.DataFrame:
    """Quarantine rows: original values as text, the reason, and the whole record as JSON."""
    import numpy as np
    import pandas as pd

    rows = frame[mask]
    out = pd.DataFrame({
        "source_row": np.asarray(chunk.rows, dtype=np.int64)[mask],
        "reason": reason[mask].astype(object),
    })
    for canonical in CANONICAL_COLUMNS:
        if canonical in plan:
            out[canonical] = rows[plan[canonical]].astype("string").astype(object).to_numpy()
        else:
            out[canonical] = None
    out = out.astype({c: object for c in CANONICAL_COLUMNS})
    out["raw_record"] = _json_records(rows)
    if chunk.malformed:
        extra = pd.DataFrame({
            "source_row": pd.array([num for num, _ in chunk.malformed], dtype="Int64"),
            "reason": "malformed_row",
            "raw_record": [_json_text(text) for _, text in chunk.malformed],
        })
        for canonical in CANONICAL_COLUMNS:
            extra[canonical] = None
        out = pd.concat([out.astype({"source_row": "Int64"}), extra[out.columns]], ignore_index=True)
    for column in (*CANONICAL_COLUMNS, "reason", "raw_record"):
        out[column] = _none_for_missing(out[column])
    return out


def _none_for_missing(values: pd.Series) -> pd.Series:
    """Object values with ``None`` for every missing one (NaN, NaT, pd.NA), as JSON and SQL want."""
    # pandas-stubs does not admit None as `other`, which pandas documents and supports.
    result: pd.Series = values.astype(object).where(values.notna(), None)  # type: ignore[call-overload]
    return result


def _json_records(rows: pd.DataFrame) -> list[str]:
    if rows.empty:
        return []
    text = rows.astype("string").to_json(orient="records", lines=True, force_ascii=False,
                                         date_format="iso")
    return text.rstrip("\n").split("\n")


def _json_text(text: str) -> str:
    import json

    return json.dumps({"_line": text}, ensure_ascii=False)
