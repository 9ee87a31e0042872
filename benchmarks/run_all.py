"""`make bench`: run every benchmark script and collect their tables.

Each ``benchmarks/bench_*.py`` measures one part of Shopflow beside its floor in the same
run, prints a table and writes JSON to ``SHOPFLOW_HOME/bench/``. This runner executes them
one after another (never in parallel: they would measure each other) and stops on none of
their failures, so one broken benchmark still leaves the others' tables. The benchmarks
that re-run one stage on a home kept by ``bench_pipeline --keep`` need that home as an
argument and are left out of the default list (run them by hand, as their docstrings say).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
#: Re-run one stage on a kept pipeline home, which they take as an argument.
ON_A_KEPT_HOME = frozenset({"bench_materialize", "bench_training_memory"})


def standalone_benchmarks() -> list[str]:
    """Every benchmark that runs without arguments, by module name."""
    return sorted(p.stem for p in BENCH_DIR.glob("bench_*.py") if p.stem not in ON_A_KEPT_HOME)


def main(argv: list[str] | None = None) -> int:
    """Run the named benchmarks (default: all) and report which failed."""
    names = argv if argv else standalone_benchmarks()
    failed: list[str] = []
    for name in names:
        print(f"\n##### {name}", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, "-m", f"benchmarks.{name}"])
        print(f"##### {name}: exit {code} after {time.monotonic() - started:.0f}s", flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
