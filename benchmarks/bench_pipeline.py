"""The training DAG end to end at growing data sizes: per-stage time, peak memory, growth.

For each size a fresh ``SHOPFLOW_HOME`` (in a temporary folder) gets synthetic events of
that size (``SHOPFLOW_GENERATOR__EVENTS``), and ``shopflow pipeline run --json`` runs the
whole ``shopflow_training`` DAG (Airflow ``dag.test``, in one process) as a child of this
one. The per-stage seconds are Airflow's task durations from that summary. Memory is
measured two ways, because dbt and Feast may start their own processes:

* ``peak tree MiB``: the largest sum of resident memory over the child and all its
  descendants, sampled from ``/proc`` every 0.25 s (what the machine had to hold at once);
* ``peak proc MiB``: the kernel's ``ru_maxrss`` from ``os.wait4`` (the largest single
  process in the tree, exact, no sampling).

The load average is sampled beside every run: the machine may be shared, and CPU seconds
(user + system over the whole tree) say more than wall time when it is. Results are
merged into ``SHOPFLOW_HOME/bench/pipeline.json`` by size (so a long 10M run can be added
later), and the tables are printed in Markdown.

Beside each run stand its floor, measured in the same run on the same warehouse file: one
DuckDB pass that groups every raw event by shopper (what no pipeline can skip), and the
disk the run's ``SHOPFLOW_HOME`` took at its peak (warehouse, DuckDB spill, Feast, models).

    python -m benchmarks.bench_pipeline                               # 100k and 1M
    python -m benchmarks.bench_pipeline --sizes 10000000 --timeout 3600
    python -m benchmarks.bench_pipeline --sizes all --timeout 7200     # 100k .. 100M
    python -m benchmarks.bench_pipeline --sizes 10000000 --param recommend=false
    python -m benchmarks.bench_pipeline --sizes 100000 --families baseline,xgboost
    python -m benchmarks.bench_pipeline --report                       # tables from the JSON
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.machine import machine_info, print_report, write_json

logger = logging.getLogger(__name__)

BENCH_NAME = "pipeline"
DEFAULT_SIZES = (100_000, 1_000_000)

# Targets (issue 13, scale): end-to-end wall time and peak memory by size, growth per 10x.
DEFAULT_SIZES_ALL = (100_000, 1_000_000, 10_000_000, 100_000_000)
#: The pipeline's exit code when every training stage ran and gate 3 waits for a model
#: service (``shopflow.cli.pipeline.EXIT_DEPLOY_PENDING``): the bench starts none, so this
#: is how a complete service-less run ends.
EXIT_DEPLOY_PENDING = 4
DEPLOY_PENDING = "deploy pending"
#: Run states that count as a finished training DAG for the targets and growth.
FINISHED_STATES = ("success", DEPLOY_PENDING)
TARGET_SECONDS = {1_000_000: 5 * 60, 10_000_000: 10 * 60, 100_000_000: 90 * 60}
TARGET_PEAK_GIB = {10_000_000: 6.0, 100_000_000: 16.0}
TARGET_GROWTH_PER_10X = 10.0
#: Seconds between two disk-usage samples of SHOPFLOW_HOME (a walk over its files).
DISK_SAMPLE_SECONDS = 5.0

# Task id order of shopflow_training, for the table; mapped tasks come as train[<family>].
STAGE_ORDER = (
    "plan", "ingest", "gate_raw", "dbt_staging", "gate_staging", "dbt_intermediate",
    "dbt_marts", "gate_marts", "publish_marts", "feast_apply", "feast_materialize",
    "training_set", "train_candidate", "evaluate", "champion_gate", "register",
    "train_recommender", "deploy",
    "post_deploy_check",
)


# ---- running one size ----------------------------------------------------------------

def _shopflow() -> list[str]:
    script = Path(sys.executable).with_name("shopflow")
    return [str(script)] if script.exists() else [sys.executable, "-m", "shopflow.cli"]


def _tree_rss_bytes(root: int) -> int:
    """Resident memory of ``root`` and every descendant, from ``/proc`` (0 if gone)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as handle:
                stat = handle.read()
            # comm may contain spaces or parentheses: split after the last ')'.
            fields = stat[stat.rindex(")") + 2:].split()
            pid = int(entry.name)
            children.setdefault(int(fields[1]), []).append(pid)
            rss[pid] = int(fields[21]) * page
        except (OSError, ValueError, IndexError):
            continue
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, ()))
    return total


def disk_bytes(root: Path) -> int:
    """Bytes ``root`` occupies on disk (allocated blocks, so sparse files count as written)."""
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
            except OSError:  # a file removed while walking
                continue
    return total


class _Sampler(threading.Thread):
    """Samples the process tree's memory, the load and (given a home) its disk use until
    stopped."""

    def __init__(self, pid: int, home: Path | None = None, interval: float = 0.25) -> None:
        super().__init__(name="bench-sampler", daemon=True)
        self.pid = pid
        self.home = home
        self.interval = interval
        self.peak_bytes = 0
        self.peak_disk_bytes = 0
        self.samples: list[tuple[float, int]] = []  # (epoch seconds, tree RSS bytes)
        self.loads: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        last_load = last_disk = 0.0
        while not self.stop.wait(self.interval):
            rss = _tree_rss_bytes(self.pid)
            self.peak_bytes = max(self.peak_bytes, rss)
            self.samples.append((time.time(), rss))
            now = time.monotonic()
            if now - last_load >= 5:
                self.loads.append(os.getloadavg()[0])
                last_load = now
            if self.home is not None and now - last_disk >= DISK_SAMPLE_SECONDS:
                self.peak_disk_bytes = max(self.peak_disk_bytes, disk_bytes(self.home))
                last_disk = now


def scan_floor(home: Path) -> dict[str, Any] | None:
    """The floor of a pipeline run on this data: one DuckDB pass over the raw events.

    Every run must read each event at least once and group it by shopper; this times
    exactly that (``count``, ``min``/``max`` time per user over ``raw.raw_events``, every
    core), on the same warehouse file, right after the run, so the pipeline's wall time can
    be read as a multiple of it. None when the run left no DuckDB warehouse.
    """
    path = home / "warehouse.duckdb"
    if not path.is_file():
        return None
    import duckdb

    try:
        with duckdb.connect(str(path), read_only=True) as con:
            started = time.perf_counter()
            row = con.execute(
                "select count(*), sum(n) from (select user_id, count(*) as n, "
                "min(event_time), max(event_time) from raw.raw_events group by user_id)"
            ).fetchone()
            seconds = time.perf_counter() - started
    except duckdb.Error as exc:
        logger.warning("floor scan failed: %s", exc)
        return None
    users, events = row if row else (0, 0)
    return {"seconds": round(seconds, 3), "users": int(users or 0), "events": int(events or 0)}


def _parse_summary(stdout: str) -> dict[str, Any] | None:
    """The JSON summary at the end of ``pipeline run --json`` (progress lines come first)."""
    start = stdout.find("\n{")
    text = stdout[start + 1:] if start >= 0 else stdout if stdout.startswith("{") else ""
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def stage_peaks(home: Path, samples: list[tuple[float, int]]) -> dict[str, float]:
    """Peak tree RSS (MiB) while each stage ran, by stage record label.

    A stage record (``reports/runs/*/stages/*.json``) is written when the stage ends, so
    its file time is the end and ``seconds`` gives the start. The process is one Python
    interpreter for all in-process stages, so a stage's figure is the high-water mark
    while it ran: memory an earlier stage did not give back is included.
    """
    peaks: dict[str, float] = {}
    for path in (home / "reports" / "runs").glob("*/stages/*.json"):
        try:
            record = json.loads(path.read_text())
            end = path.stat().st_mtime
            start = end - float(record["seconds"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        inside = [rss for t, rss in samples if start - 0.3 <= t <= end + 0.3]
        if inside:
            peaks[str(record["stage"])] = round(max(inside) / 2**20, 1)
    return peaks


def run_size(events: int, *, work: Path, days: int, families: list[str] | None,
             timeout: float, keep: bool, params: list[str] | None = None) -> dict[str, Any]:
    """Run the training DAG once on ``events`` synthetic events; what it cost.

    Returns a JSON-able dict: exit code, state, wall/CPU seconds, peak memory, load,
    per-stage seconds (task label -> seconds) and the failed tasks with their errors.
    """
    home = work / f"home-{events}"
    shutil.rmtree(home, ignore_errors=True)
    env = {**os.environ, "SHOPFLOW_HOME": str(home),
           "SHOPFLOW_GENERATOR__EVENTS": str(events), "SHOPFLOW_GENERATOR__DAYS": str(days)}
    for name in ("SHOPFLOW_CONFIG", "SHOPFLOW_SOURCE__PATH", "AIRFLOW_HOME"):
        env.pop(name, None)
    args = [*_shopflow(), "pipeline", "run", "--json"]
    if families:
        args += ["--param", "families=" + ",".join(families)]
    for item in params or []:
        args += ["--param", item]
    load_before = os.getloadavg()
    logger.info("%s events: starting %s (home %s)", f"{events:,}", " ".join(args[1:]), home)
    started = time.perf_counter()
    out_path, err_path = work / f"stdout-{events}.txt", work / f"stderr-{events}.txt"
    with out_path.open("w") as out, err_path.open("w") as err:
        # Own session: a timeout kills dbt/Feast children too.
        process = subprocess.Popen(args, env=env, stdout=out, stderr=err,
                                   start_new_session=True)
        sampler = _Sampler(process.pid, home)
        sampler.start()
        timer = threading.Timer(timeout, _kill_tree, args=(process.pid,))
        timer.start()
        try:
            # wait4, not wait(): this child's rusage (incl. its reaped descendants).
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
            sampler.stop.set()
            sampler.join(timeout=5)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    process.returncode = code
    timed_out = code in (-signal.SIGKILL, -signal.SIGTERM) and seconds >= timeout
    stdout = out_path.read_text()
    summary = _parse_summary(stdout)
    result: dict[str, Any] = {
        "events": events,
        "days": days,
        "families": families,
        "params": list(params or []),
        "exit_code": code,
        "timed_out": timed_out,
        "wall_s": round(seconds, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_tree_mib": round(sampler.peak_bytes / 2**20, 1),
        "peak_proc_mib": round(usage.ru_maxrss / 1024, 1),
        "load_before": [round(v, 2) for v in load_before],
        "load_mean_1m": round(sum(sampler.loads) / len(sampler.loads), 2) if sampler.loads
        else round(os.getloadavg()[0], 2),
        "load_max_1m": round(max(sampler.loads), 2) if sampler.loads else None,
        "state": None,
        "dag_seconds": None,
        "stages": {},
        "stage_peak_mib": {},
        "failed": {},
        "skipped": [],
        "home": str(home) if keep else None,
        "peak_disk_mib": round(sampler.peak_disk_bytes / 2**20, 1),
        "disk_mib": round(disk_bytes(home) / 2**20, 1),
        "floor": scan_floor(home),
    }
    peaks = stage_peaks(home, sampler.samples)
    if summary:
        result["state"] = summary.get("state")
        result["dag_seconds"] = summary.get("seconds")
        for stage in summary.get("stages", []):
            label = _short_label(stage["task"])
            result["stages"][label] = stage.get("seconds")
            if stage.get("stage") in peaks:
                result["stage_peak_mib"][label] = peaks[stage["stage"]]
            if stage.get("status") == "skipped" or stage.get("state") == "skipped":
                result["skipped"].append(label)
            if stage.get("state") in ("failed", "upstream_failed") or stage.get("error"):
                result["failed"][label] = stage.get("error") or stage.get("state")
        if code == EXIT_DEPLOY_PENDING and set(result["failed"]) <= {"post_deploy_check"}:
            result["state"] = DEPLOY_PENDING
            result["deploy_pending"] = result["failed"].pop("post_deploy_check", None)
    else:
        # killed or crashed before the summary: the stage records still say what finished
        result["stages"] = stages_from_records(home)
        result["stage_peak_mib"] = {_task_label(k): v for k, v in peaks.items()}
        result["stderr_tail"] = err_path.read_text()[-3000:]
        result["stdout_tail"] = stdout[-2000:]
    if not keep:
        shutil.rmtree(home, ignore_errors=True)
    return result


def _kill_tree(pid: int) -> None:
    logger.warning("timeout: killing process group %d", pid)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stages_from_records(home: Path) -> dict[str, float]:
    """Task label -> seconds from the stage records a run left (finished stages only)."""
    stages: dict[str, float] = {}
    for path in sorted((home / "reports" / "runs").glob("*/stages/*.json"),
                       key=lambda p: p.stat().st_mtime):
        try:
            record = json.loads(path.read_text())
            stages[_task_label(str(record["stage"]))] = round(float(record["seconds"]), 3)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return stages


def _task_label(record_stage: str) -> str:
    """A stage record's label as the table names the task (``quality_gate[raw]`` -> ``gate_raw``)."""
    for prefix, task in (("quality_gate[", "gate_"), ("dbt_layer[", "dbt_"),
                         ("train_candidate[", "train[")):
        if record_stage.startswith(prefix):
            inner = record_stage[len(prefix):-1]
            return f"train[{inner}]" if task == "train[" else f"{task}{inner}"
    return record_stage


def _short_label(task: str) -> str:
    """``train_candidate[xgboost]`` -> ``train[xgboost]``; other task ids as they are."""
    if task.startswith("train_candidate["):
        return "train" + task[len("train_candidate"):]
    return task


# ---- tables ---------------------------------------------------------------------------

def _stage_labels(runs: list[dict[str, Any]]) -> list[str]:
    seen: list[str] = []
    for run in runs:
        for label in [*run["stages"], *run.get("stages_separate", {})]:
            if label not in seen:
                seen.append(label)

    def order(label: str) -> tuple[int, str]:
        base = "train_candidate" if label.startswith("train[") else label
        rank = STAGE_ORDER.index(base) if base in STAGE_ORDER else len(STAGE_ORDER)
        return rank, label

    return sorted(seen, key=order)


def growth_per_10x(small: float | None, large: float | None, ratio: float) -> float | None:
    """How much a cost grows per 10x data between two sizes ``ratio`` apart.

    ``(large / small) ** (1 / log10(ratio))``: 10 means linear, below 10 sub-linear. None
    when either value is missing or too small to compare (under 0.05: noise).
    """
    if small is None or large is None or min(small, large) < 0.05 or ratio <= 1:
        return None
    return (large / small) ** (1 / math.log10(ratio))


def tables(runs: list[dict[str, Any]]) -> list[tuple[str, list[str], list[list[Any]]]]:
    """(title, headers, rows) of the per-stage table and the totals/targets table."""
    runs = sorted(runs, key=lambda r: r["events"])
    sizes = [f"{r['events']:,}" for r in runs]
    pairs = list(zip(runs, runs[1:], strict=False))
    growth_heads = [f"x per 10x {_short(a['events'])}→{_short(b['events'])}" for a, b in pairs]

    stage_rows: list[list[Any]] = []
    for label in _stage_labels(runs):
        row: list[Any] = [label]
        for run in runs:
            value = _seconds(run, label)
            mark = " ✗" if label in run["failed"] else ""
            if label in run.get("skipped", []):
                row.append("skipped")
                continue
            if label not in run["stages"] and label in run.get("stages_separate", {}):
                mark = " *"
            row.append(f"-{mark}" if value is None else f"{value:,.1f}{mark}")
        for a, b in pairs:
            g = growth_per_10x(_seconds(a, label), _seconds(b, label), b["events"] / a["events"])
            row.append("-" if g is None else f"{g:.1f}")
        for run in runs:
            peak = run.get("stage_peak_mib", {}).get(label,
                                                     run.get("stages_separate_peak_mib", {}).get(label))
            row.append("-" if peak is None else f"{peak:,.0f}")
        stage_rows.append(row)
    stage_table = ("Training DAG per stage (seconds; ✗ = task failed; * = measured apart "
                   "from the DAG run, see stages_separate; MiB = peak tree RSS while the "
                   "stage ran)",
                   ["stage", *[f"{s} events s" for s in sizes], *growth_heads,
                    *[f"{_short(r['events'])} MiB" for r in runs]], stage_rows)

    total_rows: list[list[Any]] = []
    for run in runs:
        target_s = TARGET_SECONDS.get(run["events"])
        target_gib = TARGET_PEAK_GIB.get(run["events"])
        finished = run["state"] in FINISHED_STATES
        peak_gib = max(run["peak_tree_mib"], run["peak_proc_mib"]) / 1024
        stage_sum = sum(v for v in run["stages"].values() if v)
        floor = run.get("floor") or {}
        floor_s = floor.get("seconds")
        total_rows.append([
            f"{run['events']:,}",
            run["state"] or ("timeout" if run["timed_out"] else f"exit {run['exit_code']}"),
            run["wall_s"],
            "-" if not floor_s else f"{floor_s:,.2f} ({run['wall_s'] / floor_s:,.0f}x)",
            round(stage_sum, 1),
            run["cpu_s"],
            run["peak_tree_mib"],
            run["peak_proc_mib"],
            "-" if run.get("peak_disk_mib") is None else
            f"{run['peak_disk_mib']:,.0f} ({run.get('disk_mib', 0):,.0f} at the end)",
            f"{run['load_mean_1m']} (max {run['load_max_1m']})",
            "-" if target_s is None else
            f"≤ {target_s / 60:.0f} min: {'met' if run['wall_s'] <= target_s else 'MISSED'}"
            if finished or run["wall_s"] > (target_s or 0) else
            f"≤ {target_s / 60:.0f} min: not finished",
            "-" if target_gib is None else
            f"≤ {target_gib:.0f} GiB: {'MISSED' if peak_gib > target_gib else 'met'}"
            if finished or peak_gib > target_gib else
            f"≤ {target_gib:.0f} GiB: within so far, not finished",
        ])
    for a, b in pairs:
        ratio = b["events"] / a["events"]
        both = a["state"] in FINISHED_STATES and b["state"] in FINISHED_STATES
        common = [k for k in a["stages"] if _seconds(a, k) and _seconds(b, k) is not None]
        g_common = growth_per_10x(sum(_seconds(a, k) or 0 for k in common),
                                  sum(_seconds(b, k) or 0 for k in common), ratio)
        g_wall = growth_per_10x(a["wall_s"], b["wall_s"], ratio) if both else None
        g_cpu = growth_per_10x(a["cpu_s"], b["cpu_s"], ratio) if both else None
        g_mem = growth_per_10x(a["peak_tree_mib"], b["peak_tree_mib"], ratio)
        g_disk = growth_per_10x(a.get("peak_disk_mib"), b.get("peak_disk_mib"), ratio)
        g_floor = growth_per_10x((a.get("floor") or {}).get("seconds"),
                                 (b.get("floor") or {}).get("seconds"), ratio)
        judged = g_wall if g_wall is not None else g_common
        verdict = "met" if judged is not None and judged <= TARGET_GROWTH_PER_10X else "MISSED"
        total_rows.append([
            f"x per 10x {_short(a['events'])}→{_short(b['events'])}",
            "" if both else "one run unfinished",
            "-" if g_wall is None else f"{g_wall:.1f}",
            "-" if g_floor is None else f"{g_floor:.1f}",
            "-" if g_common is None else f"{g_common:.1f} ({len(common)} stages)",
            "-" if g_cpu is None else f"{g_cpu:.1f}",
            "-" if g_mem is None else f"{g_mem:.1f}", "",
            "-" if g_disk is None else f"{g_disk:.1f}", "",
            f"growth ≤ {TARGET_GROWTH_PER_10X:.0f}x: {verdict}", "",
        ])
    total_table = ("Training DAG end to end vs targets",
                   ["events", "state", "wall s", "floor s (wall / floor)",
                    "sum of stages s (growth: stages both ran)", "cpu s (tree)",
                    "peak tree MiB", "peak proc MiB", "peak disk MiB", "load 1m mean (max)",
                    "target time", "target memory"], total_rows)
    return [stage_table, total_table]


def _seconds(run: dict[str, Any], label: str) -> float | None:
    """A stage's seconds (from the DAG run, else measured apart); None if skipped or absent."""
    if label in run.get("skipped", []):
        return None
    value = run["stages"].get(label)
    return value if value is not None else run.get("stages_separate", {}).get(label)


def _short(events: int) -> str:
    for unit, div in (("M", 1_000_000), ("k", 1_000)):
        if events >= div and events % div == 0:
            return f"{events // div}{unit}"
    return str(events)


# ---- entry point ---------------------------------------------------------------------

def _load_previous(path: Path) -> dict[int, dict[str, Any]]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        return {int(r["events"]): r for r in data.get("runs", [])}
    except (ValueError, KeyError, TypeError):
        logger.warning("ignoring unreadable %s", path)
        return {}


def _parse_list(text: str, *, kind: type) -> list[Any]:
    try:
        return [kind(v.strip().replace("_", "")) if kind is int else v.strip()
                for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a comma list of {kind.__name__}: {text!r}") \
            from exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=lambda t: list(DEFAULT_SIZES_ALL) if t == "all"
                        else _parse_list(t, kind=int),
                        default=list(DEFAULT_SIZES),
                        help="Comma list of event counts (default: 100000,1000000; "
                        "`all`: 100k, 1M, 10M and 100M).")
    parser.add_argument("--families", type=lambda t: _parse_list(t, kind=str), default=None,
                        help="Comma list of model families (default: the config's).")
    parser.add_argument("--param", dest="params", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="A DAG param passed to `pipeline run` (repeatable), e.g. "
                        "recommend=false.")
    parser.add_argument("--days", type=int, default=120, help="Days of synthetic events.")
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="Seconds one size may run before its process tree is killed.")
    parser.add_argument("--keep", action="store_true",
                        help="Keep each size's SHOPFLOW_HOME (for profiling a stage).")
    parser.add_argument("--fresh", action="store_true",
                        help="Forget earlier sizes in pipeline.json instead of merging.")
    parser.add_argument("--report", action="store_true",
                        help="Only print the tables of the existing pipeline.json.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    home = Path(os.environ.get("SHOPFLOW_HOME", ".shopflow")).resolve()
    json_path = home / "bench" / f"{BENCH_NAME}.json"
    runs = {} if args.fresh else _load_previous(json_path)
    if not args.report:
        home.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="bench-pipeline-", dir=home))
        try:
            for events in args.sizes:
                result = run_size(events, work=work, days=args.days, families=args.families,
                                  timeout=args.timeout, keep=args.keep, params=args.params)
                result["machine"] = machine_info()
                runs[events] = result
                logger.info("%s events: %s in %.0fs, peak %.0f MiB (tree), load %.1f",
                            f"{events:,}", result["state"] or f"exit {result['exit_code']}",
                            result["wall_s"], result["peak_tree_mib"], result["load_mean_1m"])
                # after every size: a long run that is killed still leaves the earlier ones
                write_json(home / "bench", BENCH_NAME,
                           {"runs": [runs[k] for k in sorted(runs)]})
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
    if not print_report(list(runs.values()), tables, json_path):
        return 1
    failed = [r for r in runs.values() if r["exit_code"] not in (0, EXIT_DEPLOY_PENDING)]
    return 1 if any(r["timed_out"] or r["state"] is None for r in failed) else 0


if __name__ == "__main__":
    raise SystemExit(main())
