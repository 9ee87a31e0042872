"""Durations as written in run configs: ``30d``, ``12h``, ``15m`` (and ``45s``).

The run config (docs/DESIGN.md §3) expresses horizons, lookbacks and cutoff spacing as short
strings so that a minute-level clickstream and a year of invoices use the same keys.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(value: object) -> timedelta:
    """Parse ``"30d"``-style strings (or pass a ``timedelta`` through).

    Raises:
        ValueError: naming the accepted units, so a typo in a config gets a clear message.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    if isinstance(value, str):
        match = _PATTERN.match(value)
        if match:
            amount, unit = match.groups()
            duration = timedelta(**{_UNITS[unit]: float(amount)})
            if duration <= timedelta(0):
                raise ValueError(f"duration {value!r} must be positive")
            return duration
    raise ValueError(
        f"invalid duration {value!r}: use a number followed by one of "
        "s (seconds), m (minutes), h (hours), d (days), w (weeks), e.g. '30d' or '15m'"
    )


def format_duration(value: timedelta) -> str:
    """Render a duration in the largest unit that divides it exactly (``30d``, ``90m``)."""
    seconds = int(value.total_seconds())
    for suffix, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{suffix}"
    return f"{seconds}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
