"""Give freed memory back to the operating system between pipeline stages.

``shopflow pipeline run`` (Airflow's ``dag.test``) runs every task of a DAG in one
process, so what a stage frees but the allocators keep counts against every later stage:
at 10M events the training stages each free gigabytes of frames and matrices, yet the
process stayed near its high-water mark to the end of the run. Three allocators hold on
to freed memory: Python's reference cycles wait for the collector, glibc's malloc keeps
freed heap pages (small objects: the strings of a frame's object columns) until
``malloc_trim``, and Arrow's pool (Parquet reads and writes) keeps its free pages until
asked. And Feast's offline store (point-in-time retrieval, materialization) runs on
ibis' default backend, a process-wide in-memory DuckDB (memory limit 80 % of RAM) that
keeps its caches for as long as it lives: it is closed, and the next Feast call opens a
fresh one. :func:`release_memory` does all four; it changes no data, only the resident
size.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import sys
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

logger = logging.getLogger(__name__)

#: A full garbage collection takes about 0.7 s in a process that has Airflow, Feast and
#: pandas loaded (their millions of long-lived objects are walked every time), whatever
#: there is to free. Below this resident size a stage has little to give back, and a small
#: run (the tests: tens of stages of a second each) would mostly pay for the walk.
COLLECT_ABOVE_BYTES = 1 << 30


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    trimmed: Callable[[int], int] = trim
    return trimmed


def release_memory() -> None:
    """Collect cycles, then return free pages of Arrow's pool and glibc's heap to the OS.

    Safe at any point where no memory is in flight, such as a stage's end. The cycle
    collection runs only above :data:`COLLECT_ABOVE_BYTES` resident (the rest costs
    milliseconds); Arrow is only asked if something already imported it.
    """
    _close_ibis_default_backend()
    resident = resident_bytes()
    if resident is None or resident >= COLLECT_ABOVE_BYTES:
        gc.collect()
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None:
        try:
            pyarrow.default_memory_pool().release_unused()
        except Exception as exc:  # an old or odd pool; trimming is best effort
            logger.debug("arrow pool release failed: %s", exc)
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def resident_bytes() -> int | None:
    """This process's resident set size now (Linux ``/proc``), or None where unknown."""
    try:
        fields = Path("/proc/self/statm").read_text(encoding="ascii").split()
    except OSError:
        return None
    return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")


def _close_ibis_default_backend() -> None:
    """Close ibis' default DuckDB (Feast's offline store), if one was opened.

    ``ibis.options.default_backend`` is ibis' public option; unset, ibis opens a new
    in-memory DuckDB on next use. At 3M events the one left by the training set's
    retrieval held about 330 MB after the stage.
    """
    ibis = sys.modules.get("ibis")
    if ibis is None:
        return
    backend = ibis.options.default_backend
    if backend is None:
        return
    ibis.options.default_backend = None
    try:
        backend.disconnect()
    except Exception as exc:  # already closed or half-made; dropping it is what counts
        logger.debug("closing ibis' default backend failed: %s", exc)
