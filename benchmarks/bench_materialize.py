"""The ``feast_materialize`` stage alone, re-run as a first load on a kept pipeline home.

``bench_pipeline --keep`` leaves a home with its Feast registry, offline Parquet files
and a filled online store. This copies that home's ``feast`` folder (the stage reads
nothing else), empties the online tables (the state ``feast_apply`` leaves on a fresh
home, indexes included) and runs ``shopflow.features.materialize`` over all of history,
so the same rows are written as in the pipeline's first run. Reports per view seconds
and entities, the whole call's wall time and this process's peak RSS; writes JSON to
``SHOPFLOW_HOME/bench/materialize.json``. The copy is removed afterwards.

    python -m benchmarks.bench_materialize /tmp/X/bench-pipeline-.../home-3000000
"""

from __future__ import annotations

import argparse
import logging
import resource
import shutil
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.machine import print_table, write_json


def _fresh_copy(kept: Path, work: Path) -> Path:
    """A home holding a copy of ``kept``'s Feast folder, its online tables emptied."""
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(kept / "feast", work / "feast")
    online = work / "feast" / "online.db"
    if online.is_file():
        conn = sqlite3.connect(online)
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        with conn:
            for table in tables:
                conn.execute('DELETE FROM "' + table.replace('"', '""') + '"')
        conn.execute("VACUUM")
        conn.close()
    return work


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kept_home", type=Path, help="a home kept by bench_pipeline --keep")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from shopflow.features import materialize
    from shopflow.settings import load_settings

    bench_home = load_settings().home_dir
    work = _fresh_copy(args.kept_home, bench_home / "bench" / "materialize-work")
    settings = load_settings(home=work)
    settings.ensure_dirs()
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    started = time.perf_counter()
    result = materialize(settings, start=datetime(1970, 1, 1, tzinfo=UTC))
    seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    shutil.rmtree(work, ignore_errors=True)

    views = [{"view": v.view, "entities": v.entities, "written": v.written, "seconds": round(v.seconds, 2)}
             for v in result.views]
    rows = [[v["view"], v["entities"], v["seconds"]] for v in views]
    rows.append(["materialize() total (with Feast start-up)", result.entities, round(seconds, 2)])
    print_table(f"feast_materialize as a first load (peak RSS {peak_mib:.0f} MiB)", ["view", "entities", "seconds"], rows)
    print(f"load average before {load_before}, after {load_after}")
    path = write_json(bench_home / "bench", "materialize", {
        "kept_home": str(args.kept_home), "seconds": round(seconds, 2), "peak_rss_mib": round(peak_mib),
        "views": views, "load_average": {"before": load_before, "after": load_after}})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
