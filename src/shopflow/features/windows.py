"""Feature windows: derived from the task (horizon, lookback) or set in ``features.windows``.

A model predicting a purchase within ``task.horizon`` needs history at scales near that
horizon, and never more than ``task.lookback`` (the history features may see). The
default ladder is

    horizon / 4 (rounded down to whole days, hours or minutes), horizon, 4 x horizon,
    16 x horizon, ... while shorter than the lookback, and the lookback itself,

keeping only positive windows no longer than the lookback, without repeats, shortest
first. So a 30-day horizon with a 90-day lookback gets ``7d, 30d, 90d`` and a 15-minute
horizon with a 60-minute lookback ``3m, 15m, 60m -> 1h``. ``features.windows`` replaces
the ladder with an explicit list (each at most the lookback).

Every windowed feature's name ends with :func:`window_suffix` of its window
(``events_7d``, ``purchases_1h``, ``monetary_30m``). dbt builds the same names with the
macro ``window_suffix`` (``dbt_project/macros/windows.sql``), which mirrors this function
(``tests/unit/test_feature_windows.py`` checks that they agree). Since no two windows are
equal, no two windowed features are the same column.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from shopflow.durations import format_duration

if TYPE_CHECKING:
    from collections.abc import Iterable

    from shopflow.settings import Settings

_UNITS = (86_400, 3_600, 60, 1)


def window_suffix(seconds: int) -> str:
    """The compact name of a window: the largest unit that divides it (``7d``, ``90m``)."""
    if seconds <= 0 or int(seconds) != seconds:
        raise ValueError(f"a feature window must be a positive whole number of seconds, got {seconds!r}")
    return format_duration(timedelta(seconds=int(seconds)))


def _round_down(seconds: int) -> int:
    """Round down to whole days, hours or minutes, whichever is the largest that fits."""
    for unit in _UNITS:
        if seconds >= unit:
            return seconds // unit * unit
    return seconds


def ladder(horizon_seconds: int, lookback_seconds: int) -> tuple[int, ...]:
    """The default windows of a task (see the module docstring), shortest first."""
    if horizon_seconds <= 0 or lookback_seconds <= 0:
        raise ValueError("the horizon and the lookback must be positive")
    windows = [_round_down(horizon_seconds // 4)]
    step = horizon_seconds
    while step < lookback_seconds:
        windows.append(step)
        step *= 4
    windows.append(lookback_seconds)
    return normalise_windows((w for w in windows if 0 < w <= lookback_seconds), lookback_seconds)


def normalise_windows(windows: Iterable[float], lookback_seconds: int) -> tuple[int, ...]:
    """Distinct positive windows, shortest first.

    Raises:
        ValueError: a window is longer than the lookback (features never see that far
            back) or not a whole number of seconds.
    """
    out: set[int] = set()
    for window in windows:
        seconds = int(window)
        if seconds != window or seconds <= 0:
            raise ValueError(f"feature window {window!r}s is not a positive whole number of seconds")
        if seconds > lookback_seconds:
            raise ValueError(
                f"feature window {window_suffix(seconds)} is longer than the lookback "
                f"{window_suffix(lookback_seconds)}: features see at most task.lookback of "
                "history; shorten features.windows or lengthen task.lookback"
            )
        out.add(seconds)
    if not out:
        raise ValueError("features.windows is empty: give at least one window")
    return tuple(sorted(out))


def task_windows(settings: Settings) -> tuple[int, ...]:
    """The feature windows of a run, in seconds, shortest first.

    ``settings.features.windows`` when set, else :func:`ladder` of the task.
    """
    lookback = int(settings.task.lookback.total_seconds())
    configured = settings.features.windows
    if configured:
        return normalise_windows((w.total_seconds() for w in configured), lookback)
    return ladder(int(settings.task.horizon.total_seconds()), lookback)
