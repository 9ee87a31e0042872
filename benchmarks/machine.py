"""Facts about the machine a benchmark ran on, recorded beside every table."""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


def machine_info() -> dict[str, Any]:
    """Core count, memory and Python version: numbers mean little without them."""
    memory_gib = None
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
                    break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def print_table(title: str, headers: list[str], rows: list[list[Any]]) -> None:
    """Print a Markdown table (pasteable into the README's Performance section)."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---" for _ in headers) + "|")
    for row in rows:
        print("| " + " | ".join(_fmt(v) for v in row) + " |")
    info = machine_info()
    print(f"\n({info['cores']} cores, {info['memory_gib']} GiB, Python {info['python']})")


def print_report(runs: list[dict[str, Any]],
                 tables: Callable[[list[dict[str, Any]]], list[tuple[str, list[str], list[list[Any]]]]],
                 json_path: Path) -> bool:
    """Print the Markdown tables of ``runs`` and where their JSON lies.

    Returns False (after saying so on stderr) when there is nothing to report yet.
    """
    if not runs:
        print(f"no results in {json_path}", file=sys.stderr)
        return False
    for title, headers, rows in tables(runs):
        print_table(title, headers, rows)
    print(f"\nJSON: {json_path}")
    return True


def write_json(bench_dir: Path, name: str, payload: dict[str, Any]) -> Path:
    """Write ``<bench_dir>/<name>.json`` with the machine facts included."""
    bench_dir.mkdir(parents=True, exist_ok=True)
    path = bench_dir / f"{name}.json"
    path.write_text(json.dumps({"machine": machine_info(), **payload}, indent=2, default=str))
    return path


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
