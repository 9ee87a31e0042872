"""The one way to open DuckDB: with a memory limit, a thread count and a spill folder.

Without a limit DuckDB takes up to 80 % of the machine and a large join grows until the
process is killed; with ``memory_limit`` and ``temp_directory`` it spills to disk instead.
The same three values (``warehouse.memory_limit``, ``warehouse.threads``,
``warehouse.temp_directory``) reach dbt's profile through
:func:`shopflow.transform.dbt_runner.dbt_env`, so dbt and Shopflow's own queries share one
budget. Defaults derive from the machine: half of physical memory, every usable CPU, and
``SHOPFLOW_HOME/tmp/duckdb``.

The values are applied with ``SET`` after connecting, not as ``duckdb.connect(config=...)``:
DuckDB refuses a second connection to an open file with a different connect-time config,
and dbt-duckdb (in the same process) opens the file without one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shopflow.settings import Settings

#: Share of physical memory DuckDB may use when ``warehouse.memory_limit`` is unset; the
#: rest is left to the Python side of a task (pandas frames, models) and the OS cache.
DEFAULT_MEMORY_SHARE = 0.5


def physical_memory_bytes() -> int | None:
    """Physical memory of the machine, or None where the OS does not say (not Linux/macOS)."""
    try:
        pages = os.sysconf("SC_PHYS_PAGES")
        page_size = os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    if pages <= 0 or page_size <= 0:
        return None
    return int(pages) * int(page_size)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, as in a
    container pinned to fewer cores than the host has), at least one."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def duckdb_settings(settings: Settings) -> dict[str, str]:
    """DuckDB's ``memory_limit``, ``threads`` and ``temp_directory`` for this run, resolved.

    Values are strings, as both ``SET`` and dbt-duckdb's profile ``settings`` take them.
    ``memory_limit`` is left out only where neither the settings nor the OS give a size
    (DuckDB's own default then applies).
    """
    warehouse = settings.warehouse
    values: dict[str, str] = {}
    memory = warehouse.memory_limit
    if memory is None:
        total = physical_memory_bytes()
        if total is not None:
            memory = f"{int(total * DEFAULT_MEMORY_SHARE) // 2**20}MiB"
    if memory is not None:
        values["memory_limit"] = memory
    values["threads"] = str(warehouse.threads or usable_cpus())
    values["temp_directory"] = str(settings.duckdb_temp_dir)
    return values


def connect_duckdb(
    settings: Settings, path: Path | str | None = None, *, read_only: bool = False
) -> Any:
    """A ``duckdb.DuckDBPyConnection`` to ``path`` (None: in memory) under the run's limits.

    The spill folder is created here, on open, never at import time.
    """
    import duckdb

    if path is not None and not read_only:
        # a fresh SHOPFLOW_HOME: DuckDB creates the file, not the folders above it
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = duckdb.connect(":memory:" if path is None else str(path), read_only=read_only)
    try:
        apply_duckdb_settings(settings, conn)
    except Exception:
        conn.close()
        raise
    return conn


def apply_duckdb_settings(settings: Settings, conn: Any) -> None:
    """``SET`` the run's limits (:func:`duckdb_settings`) on an open DuckDB connection.

    Also for connections opened by others (the SQLAlchemy engine of the quality gates),
    which must open the file without a ``config`` so they share its in-process instance.
    The spill folder is created here, on open, never at import time.
    """
    values = duckdb_settings(settings)
    Path(values["temp_directory"]).mkdir(parents=True, exist_ok=True)
    for key, value in values.items():
        # DuckDB refuses to SET temp_directory again once it has spilled (even to the
        # same folder), and a second connection to an open file shares its instance
        rows = conn.execute("select current_setting($key)", {"key": key}).fetchall()
        if key == "temp_directory" and rows and rows[0][0] == value:
            continue
        conn.execute(f"SET {key} = '{value.replace(chr(39), chr(39) * 2)}'")
