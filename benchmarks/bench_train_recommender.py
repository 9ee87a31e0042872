"""``train_recommender`` alone on a kept warehouse: wall time per stage and peak memory.

The training DAG's ``train_recommender`` task is ``shopflow.recommend.run_recommendation``
on the built warehouse. This benchmark builds (or reuses) a home with synthetic events and
the dbt models recommendations need, copies it (so every run starts with an empty ledger
and no champion), runs ``run_recommendation`` in this process with both ranker families
and saving on, as the DAG does, and reports its stage seconds, the process's peak RSS
(``ru_maxrss``) and the load average beside it. Outputs (metrics and the serving
snapshot) go to ``--out`` so two code versions can be compared row for row.

    python -m benchmarks.bench_train_recommender                 # 100k, temporary home
    python -m benchmarks.bench_train_recommender --events 1000000 --base /tmp/rec_1m
    python -m benchmarks.bench_train_recommender --base /tmp/rec_1m --out /tmp/after
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any


def _build(home: Path, events: int, days: int) -> None:
    from shopflow.ingest import ingest_source
    from shopflow.recommend.data import build_marts
    from shopflow.settings import load_settings

    settings = load_settings(home=home, generator={"events": events, "days": days})
    settings.ensure_dirs()
    ingest_source(settings, progress=False)
    build_marts(settings, test=False)


def _load() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").is_file() else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="kept home with the built warehouse (built there when "
                        "missing; default: a temporary one, removed after)")
    parser.add_argument("--events", type=int, default=100_000,
                        help="synthetic events when the base is built")
    parser.add_argument("--days", type=int, default=120, help="synthetic days")
    parser.add_argument("--out", help="folder for result.json and the snapshot's Parquet files")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")

    scratch = Path(tempfile.mkdtemp(prefix="bench_train_recommender_"))
    base = Path(args.base) if args.base else scratch / "base"
    if not base.exists():
        _build(base, args.events, args.days)
    run_home = scratch / "home"
    shutil.copytree(base, run_home)
    os.environ["SHOPFLOW_HOME"] = str(run_home)

    from shopflow.recommend import run_recommendation
    from shopflow.recommend.store import load_recommender
    from shopflow.settings import load_settings

    settings = load_settings(home=run_home)
    load_before = _load()
    started = time.perf_counter()
    run = run_recommendation(settings)
    wall = time.perf_counter() - started
    result: dict[str, Any] = {
        "wall_s": wall,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "seconds": run.seconds, "load_before": load_before, "load_after": _load(),
        "metrics": run.metrics, "validation": run.validation,
        "candidate_recall": run.candidate_recall, "split": run.split, "winner": run.winner,
    }
    print(json.dumps({k: result[k] for k in ("wall_s", "peak_rss_mib", "seconds",
                                             "load_before", "load_after")}, default=str))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "result.json").write_text(json.dumps(result, indent=1, default=str))
        if run.version is not None:
            _, snapshot, _ = load_recommender(settings, run.version)
            for name in ("ranked", "popular", "purchased"):
                getattr(snapshot, name).to_parquet(out / f"{name}.parquet", index=False)
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
