"""Generator and ingestion: wall time, rows/s and peak memory of each step, as the CLI runs it.

Every step is a fresh ``shopflow`` process (so the numbers include start-up, as a user sees
them), and its peak resident memory is the kernel's ``ru_maxrss`` for that one child
(``os.wait4``; the same figure ``/usr/bin/time -v`` prints as "Maximum resident set size").
Each ingestion writes into its own empty DuckDB warehouse. Writes JSON to
``SHOPFLOW_HOME/bench/ingest.json``.

    python -m benchmarks.bench_ingest                      # 1M events, Parquet and CSV.gz
    python -m benchmarks.bench_ingest --events 1000000 10000000 --formats parquet
    python -m benchmarks.bench_ingest --events 100000 --no-online-retail   # quick
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.machine import print_table, write_json

ROOT = Path(__file__).resolve().parents[1]
ONLINE_RETAIL = ROOT.parent / "shared" / "data" / "online_retail" / "online_retail.csv.gz"


def _shopflow() -> list[str]:
    script = Path(sys.executable).with_name("shopflow")
    return [str(script)] if script.exists() else [sys.executable, "-m", "shopflow.cli"]


def run_step(args: list[str], *, home: Path) -> dict[str, Any]:
    """Run one ``shopflow`` command; wall seconds and peak RSS (MiB) of that process."""
    env = {**os.environ, "SHOPFLOW_HOME": str(home)}
    env.pop("SHOPFLOW_CONFIG", None)
    started = time.perf_counter()
    process = subprocess.Popen([*_shopflow(), *args], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    # wait4 gives this child's own rusage (communicate() would reap it first).
    stdout = process.stdout.read() if process.stdout else ""
    stderr = process.stderr.read() if process.stderr else ""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"shopflow {' '.join(args)} failed ({process.returncode}):\n"
                           f"{stdout}\n{stderr[-2000:]}")
    return {"seconds": seconds, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_mib": usage.ru_maxrss / 1024, "stdout": stdout}


def _ingest_row(label: str, path: Path, work: Path, rows: int | None,
                config: Path | None = None) -> list[Any]:
    home = work / f"home-{label}"
    shutil.rmtree(home, ignore_errors=True)
    args = ["ingest", "--json", "--no-progress"]
    args += ["--config", str(config)] if config else ["--path", str(path)]
    step = run_step(args, home=home)
    import json

    summary = json.loads(step["stdout"])
    read = summary["rows_read"]
    if rows is not None and read != rows:
        raise RuntimeError(f"ingest of {path} read {read} rows, expected {rows}")
    work_s = summary["seconds"]
    return [f"ingest {label}", read, step["seconds"], work_s, step["cpu_s"], read / work_s,
            step["peak_mib"],
            summary["rows_ingested"], summary["rows_quarantined"],
            ", ".join(f"{k} {v:,}" for k, v in summary["quarantined_by_reason"].items())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--formats", nargs="+", default=["parquet", "csv.gz"],
                        choices=["parquet", "csv", "csv.gz"])
    parser.add_argument("--online-retail", action=argparse.BooleanOptionalAction, default=True,
                        help="Also ingest the real Online Retail file (if present).")
    parser.add_argument("--keep", action="store_true", help="Keep the generated files.")
    args = parser.parse_args(argv)

    home = Path(os.environ.get("SHOPFLOW_HOME", ".shopflow")).resolve()
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=home.parent if home.parent.exists() else None))
    # "wall s": the whole process, start-up included; "work s": the step itself, as the
    # command reports it (rows/s uses it); "cpu s": user + system CPU of the process, which
    # says more than wall time on a machine shared with other work.
    headers = ["step", "rows", "wall s", "work s", "cpu s", "rows/s", "peak MiB", "ingested",
               "quarantined", "by reason / file"]
    rows: list[list[Any]] = []
    try:
        for events in args.events:
            for fmt in args.formats:
                label = f"{events:,} {fmt}"
                out = work / f"events-{events}.{fmt}"
                step = run_step(["generate", "--events", str(events), "--days", str(args.days),
                                 "--seed", str(args.seed), "--out", str(out), "--no-progress"],
                                home=work / "home-generate")
                size_mib = out.stat().st_size / 2**20
                reported = re.search(r"([\d.]+)s \(", step["stdout"])
                work_s = float(reported.group(1)) if reported else step["seconds"]
                rows.append([f"generate {label}", events, step["seconds"], work_s, step["cpu_s"],
                             events / work_s, step["peak_mib"], "", "", f"{size_mib:,.1f} MiB"])
                print(rows[-1], flush=True)
                rows.append(_ingest_row(label, out, work, events))
                print(rows[-1], flush=True)
                if not args.keep:
                    out.unlink()
        if args.online_retail and ONLINE_RETAIL.is_file():
            rows.append(_ingest_row("online_retail.csv.gz", ONLINE_RETAIL, work, None,
                                    config=ROOT / "configs" / "online_retail.yaml"))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print_table("Generator and ingestion (fresh process per step, DuckDB warehouse)",
                headers, rows)
    path = write_json(home / "bench", "ingest", {
        "days": args.days, "seed": args.seed,
        "steps": [dict(zip(headers, row, strict=True)) for row in rows],
    })
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
