"""Recommendations: ranker quality vs popularity, and in-process ``recommend`` latency.

Builds a warehouse (synthetic events by default, or the source of ``--config``), runs the
dbt models recommendations need, trains and gates the rankers with
``shopflow.recommend.run_recommendation`` and prints Recall@10 / NDCG@10 of every ranker
beside the popularity baseline on the same held-out cutoffs, the candidate recall, and
``Recommender.recommend`` p50/p99 for k=10 (known and cold-start users, in process; the
HTTP numbers are the service benchmark's). Writes JSON to ``SHOPFLOW_HOME/bench/``.

    python -m benchmarks.bench_recommend --events 200000
    python -m benchmarks.bench_recommend --config configs/online_retail.yaml
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.machine import print_table, write_json

logger = logging.getLogger("bench_recommend")


def _build(settings: Any) -> dict[str, float]:
    from shopflow.ingest import ingest_source
    from shopflow.recommend.data import build_marts

    seconds = {}
    started = time.perf_counter()
    ingest_source(settings, progress=False)
    seconds["ingest"] = time.perf_counter() - started
    started = time.perf_counter()
    build_marts(settings, test=False)
    seconds["dbt"] = time.perf_counter() - started
    return seconds


def _latency(recommender: Any, users: list[str], calls: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    picks = [users[i] for i in rng.integers(0, len(users), calls)]
    for user in picks[:200]:  # warm up
        recommender.recommend(user, 10)
    timings = np.empty(calls)
    for n, user in enumerate(picks):
        started = time.perf_counter_ns()
        recommender.recommend(user, 10)
        timings[n] = (time.perf_counter_ns() - started) / 1e6
    return {"p50_ms": float(np.percentile(timings, 50)), "p99_ms": float(np.percentile(timings, 99)),
            "calls": calls}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="run config (e.g. configs/online_retail.yaml)")
    parser.add_argument("--events", type=int, default=200_000, help="synthetic events")
    parser.add_argument("--days", type=int, default=120, help="synthetic days")
    parser.add_argument("--calls", type=int, default=20_000, help="recommend() calls timed")
    parser.add_argument("--home", help="SHOPFLOW_HOME to use (default: a temporary folder)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    from shopflow.recommend import Recommender, run_recommendation
    from shopflow.settings import load_settings

    home = Path(args.home or tempfile.mkdtemp(prefix="bench_recommend_"))
    os.environ["SHOPFLOW_HOME"] = str(home)
    overrides: dict[str, Any] = {"home": home}
    if not args.config:
        overrides["generator"] = {"events": args.events, "days": args.days}
    settings = load_settings(args.config, **overrides)
    settings.ensure_dirs()
    dataset = Path(args.config).stem if args.config else f"synthetic {args.events:,} events"

    seconds = _build(settings)
    started = time.perf_counter()
    run = run_recommendation(settings)
    seconds["recommend_pipeline"] = time.perf_counter() - started

    rows = []
    for name, metrics in run.metrics.items():
        rows.append([name, *(f"{metrics[m]:.4f}" for m in ("recall@10", "ndcg@10", "map@10",
                                                           "hit_rate@10", "coverage@10")),
                     int(metrics["users"])])
    print_table(f"Recommendations on {dataset} (test cutoffs {', '.join(run.split['test']['cutoffs'])})",
                ["model", "recall@10", "ndcg@10", "map@10", "hit_rate@10", "coverage@10", "buyers"],
                rows)
    recall = run.candidate_recall
    print(f"\ncandidate recall {recall['recall_items']:.3f} of bought items "
          f"({recall['candidates_per_user']:.0f} candidates per buyer); winner {run.winner}; "
          f"gate: {run.decision.reason}")
    print("candidate recall by source: " + ", ".join(
        f"{k.split(':')[1]} {v:.3f}" for k, v in recall.items() if k.startswith("recall_items:")))

    recommender = Recommender.load(settings)
    known = list(recommender._spans)
    cold = [f"cold-{n}" for n in range(1000)]
    latency = {
        "known": _latency(recommender, known, args.calls, 1),
        "cold_start": _latency(recommender, cold, args.calls, 2),
    }
    print_table("Recommender.recommend(user, k=10), in process",
                ["users", "calls", "p50 ms", "p99 ms"],
                [[name, v["calls"], v["p50_ms"], v["p99_ms"]] for name, v in latency.items()])
    print_table("Stage seconds", ["stage", "seconds"], [[k, v] for k, v in
                                                        {**seconds, **run.seconds}.items()])
    path = write_json(home / "bench", "bench_recommend", {
        "dataset": dataset, "metrics": run.metrics, "candidate_recall": recall,
        "split": run.split, "winner": run.winner, "decision": run.decision.reason,
        "latency": latency, "seconds": {**seconds, **run.seconds},
    })
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
