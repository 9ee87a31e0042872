"""`make bench` runs every benchmark that stands alone, and none that needs a kept home."""

from __future__ import annotations

import subprocess
import sys

import pytest
from benchmarks.run_all import BENCH_DIR, ON_A_KEPT_HOME, standalone_benchmarks


def test_default_list_is_every_standalone_benchmark() -> None:
    names = standalone_benchmarks()
    assert "bench_pipeline" in names and "bench_serving" in names
    assert not ON_A_KEPT_HOME & set(names)
    assert all((BENCH_DIR / f"{name}.py").is_file() for name in ON_A_KEPT_HOME)


@pytest.mark.parametrize("name", sorted(ON_A_KEPT_HOME))
def test_kept_home_benchmarks_refuse_to_run_without_one(name: str) -> None:
    """Why they are left out: without the home argument argparse stops them (exit 2)."""
    proc = subprocess.run([sys.executable, "-m", f"benchmarks.{name}"], cwd=BENCH_DIR.parent,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "required" in proc.stderr
