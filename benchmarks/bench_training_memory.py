"""Peak memory of the training DAG's model stages, re-run on a kept home.

``bench_pipeline --keep`` leaves a home whose marts, Feast store and ledger are built;
this re-runs only what comes after them (``training_set``, one ``train_candidate`` per
family, ``evaluate``, ``champion_gate``, ``register``) through
:func:`shopflow.pipeline.tasks.run_stage`, all in ONE child process as Airflow's
``dag.test`` runs them, so memory a stage leaves behind counts for the later ones. The
child's resident memory is sampled from ``/proc`` every 0.1 s; each stage's figure is
the high-water mark while it ran, ``peak proc`` is the kernel's ``ru_maxrss``.

The floor, measured in the same run by a second child: read the stored training set and
build the float64 matrix of every feature row (holding the data once, what any training
must). The stages write into the home (a new run folder, registry versions, ledger rows),
so pass a copy, never a home someone else reads; ``--src`` runs another checkout's code
on it (e.g. main's, for a before/after on the same data).

    python -m benchmarks.bench_training_memory --home /tmp/copy-of-home-3000000
    python -m benchmarks.bench_training_memory --home H --src /work/main/src --label before
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_pipeline import _tree_rss_bytes
from benchmarks.machine import print_table, write_json

BENCH_NAME = "training_memory"
DAG_ID = "shopflow_training"
SAMPLE_SECONDS = 0.1
#: Stage results kept in the JSON, to check a change of memory changed no result.
KEPT_RESULTS = {"training_set": ("rows", "columns", "positive_rate", "cutoffs"),
                "evaluate": ("winner", "baseline", "leaderboard"),
                "champion_gate": ("decision",)}


def _child_stages(families: list[str], run_id: str) -> None:
    """(Child) the model stages in order, in this process; one JSON line per stage."""
    from shopflow.pipeline.tasks import run_stage

    def stage(name: str, label: str, **kwargs: Any) -> Any:
        started = time.time()
        result = run_stage(name, dag_id=DAG_ID, params={}, run_id=run_id, actor="bench",
                           **kwargs)
        line = {"stage": label, "start": started, "end": time.time()}
        if name in KEPT_RESULTS:  # what must not change: leaderboard, winner, decision
            line["result"] = {k: result.get(k) for k in KEPT_RESULTS[name]}
        print(json.dumps(line, default=str), flush=True)
        return result

    stage("training_set", "training_set")
    candidates = [stage("train_candidate", f"train[{f}]", family=f) for f in families]
    evaluation = stage("evaluate", "evaluate", candidates=candidates)
    decision = stage("champion_gate", "champion_gate", evaluation=evaluation)
    stage("register", "register", decision=decision)


def _child_floor(path: str) -> None:
    """(Child) the floor: the stored training set read once and its feature matrix."""
    import pandas as pd

    from shopflow.features.matrix import feature_matrix
    from shopflow.training.split import feature_columns

    started = time.time()
    frame = pd.read_parquet(path)
    matrix = feature_matrix(frame, feature_columns(frame))
    print(json.dumps({"stage": "floor", "start": started, "end": time.time(),
                      "rows": len(frame), "features": matrix.shape[1]}), flush=True)


class _Sampler(threading.Thread):
    """Resident memory of a process tree every :data:`SAMPLE_SECONDS`."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.stop = threading.Event()
        self.samples: list[tuple[float, int]] = []

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((time.time(), _tree_rss_bytes(self.pid)))
            self.stop.wait(SAMPLE_SECONDS)


def _run_child(args: list[str], home: Path, src: str | None) -> dict[str, Any]:
    """Run one child; its stage windows with their peak MiB, peak tree and proc MiB."""
    env = {**os.environ, "SHOPFLOW_HOME": str(home)}
    if src:
        env["PYTHONPATH"] = os.pathsep.join([src, str(Path(__file__).resolve().parents[1])])
    env.pop("SHOPFLOW_CONFIG", None)
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_training_memory",
                                *args], env=env, stdout=subprocess.PIPE, text=True)
    sampler = _Sampler(process.pid)
    sampler.start()
    _, status, usage = os.wait4(process.pid, 0)
    sampler.stop.set()
    sampler.join(timeout=5)
    out = process.stdout.read() if process.stdout else ""
    stages = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    for record in stages:
        inside = [rss for t, rss in sampler.samples
                  if record["start"] - SAMPLE_SECONDS <= t <= record["end"] + SAMPLE_SECONDS]
        record["peak_mib"] = round(max(inside, default=0) / 2**20, 1)
        record["seconds"] = round(record["end"] - record["start"], 1)
    return {"exit_code": os.waitstatus_to_exitcode(status),
            "wall_s": round(time.perf_counter() - started, 1),
            "peak_tree_mib": round(max((r for _, r in sampler.samples), default=0) / 2**20, 1),
            "peak_proc_mib": round(usage.ru_maxrss / 1024, 1),
            "stages": stages}


def _training_set_path(home: Path) -> str | None:
    """A stored training set of the home (the newest run's), for the floor."""
    found = sorted((home / "reports" / "runs").glob("*/training_set-*.parquet"),
                   key=lambda p: p.stat().st_mtime)
    return str(found[-1]) if found else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True,
                        help="A kept home (bench_pipeline --keep); it is written to: a copy.")
    parser.add_argument("--families", default=None,
                        help="Comma-separated; default the home's last plan (or config).")
    parser.add_argument("--src", default=None, help="PYTHONPATH of the code to measure.")
    parser.add_argument("--label", default="run", help="Name of this run in the JSON.")
    parser.add_argument("--child-stages", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-floor", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_stages is not None:
        families, run_id = args.child_stages.split("@", 1)
        _child_stages(families.split(","), run_id)
        return 0
    if args.child_floor is not None:
        _child_floor(args.child_floor)
        return 0

    home = args.home.resolve()
    families = args.families or _planned_families(home)
    run_id = f"bench_memory__{args.label}_{int(time.time())}"
    load_before = os.getloadavg()
    run = _run_child(["--home", str(home), "--child-stages", f"{families}@{run_id}"],
                     home, args.src)
    floor_path = _training_set_path(home)
    floor = _run_child(["--home", str(home), "--child-floor", floor_path], home, None) \
        if floor_path else None
    result = {"label": args.label, "home": str(home), "families": families.split(","),
              "src": args.src, "load_before": [round(v, 2) for v in load_before],
              "load_after": [round(v, 2) for v in os.getloadavg()], "run": run,
              "floor": floor}
    rows = [[r["stage"], r["seconds"], r["peak_mib"]] for r in run["stages"]]
    rows.append(["whole run (tree / proc)", run["wall_s"],
                 f"{run['peak_tree_mib']} / {run['peak_proc_mib']}"])
    if floor is not None:
        facts = floor["stages"][0] if floor["stages"] else {}
        rows.append([f"floor: read set + matrix ({facts.get('rows')} x "
                     f"{facts.get('features')})", floor["wall_s"], floor["peak_proc_mib"]])
    print_table(f"Model stages on {home.name} ({args.label})", ["stage", "s", "peak MiB"], rows)
    print(f"load before {result['load_before']}, after {result['load_after']}; "
          f"exit {run['exit_code']}")
    out = home / "bench"
    previous = out / f"{BENCH_NAME}.json"
    runs = json.loads(previous.read_text()).get("runs", {}) if previous.is_file() else {}
    write_json(out, BENCH_NAME, {"runs": {**runs, args.label: result}})
    return 0 if run["exit_code"] == 0 else 1


def _planned_families(home: Path) -> str:
    """The families the home's last run planned (its plan record), else the config's."""
    plans = sorted((home / "reports" / "runs").glob("*/stages/plan.json"),
                   key=lambda p: p.stat().st_mtime)
    if plans:
        return ",".join(json.loads(plans[-1].read_text())["result"]["families"])
    from shopflow.settings import load_settings

    return ",".join(load_settings().training.families)


if __name__ == "__main__":
    sys.exit(main())
