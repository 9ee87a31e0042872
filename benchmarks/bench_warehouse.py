"""The data stages on each warehouse backend: ingest, dbt layers and gates, beside a floor.

What decides when Shopflow outgrows one machine is the warehouse, not the models: this
benchmark runs only the data half of the training DAG -- the stages the DAG runs, in its
order, each as its own ``shopflow`` CLI process -- on DuckDB and on PostgreSQL, at the
same synthetic events (generated once per size, shared by both backends):

    ingest -> gate_raw -> dbt_staging -> gate_staging -> dbt_intermediate -> dbt_marts
    -> gate_marts

(``shopflow ingest``, ``quality --layer raw --batch-id <the batch>``, ``transform --select
<layer>``, ``quality --layer staging|marts``; the DAG's dbt_marts task also renders dbt
docs, which is left out here.) The gates are whatever ``shopflow quality`` runs today, so
the same command measures them again after they move into the warehouse.

Beside them, in the same run and process setup, a **floor** per backend: the events file
loaded into one bare table with no contract, dedup or quarantine (DuckDB ``create table as
select * from read_parquet``; PostgreSQL the frame through ``Warehouse.append_df``, i.e.
COPY), then one aggregate that reads every row once. No ingest can beat the first, and no
layer that reads all events can beat the second.

Each step is a child process; its wall and CPU seconds come from ``os.wait4`` and its peak
memory is the process tree's resident memory sampled from ``/proc`` (the sampler of
:mod:`benchmarks.bench_pipeline`; on PostgreSQL the server's own memory is not in the
tree, only the client's). The load average is kept beside every step. A PostgreSQL run
uses a private schema prefix in ``warehouse.postgres_url`` (``bench_<random>_``), dropped
afterwards. Results merge into ``SHOPFLOW_HOME/bench/warehouse.json`` by (backend, size, DuckDB
``warehouse.memory_limit``).

    python -m benchmarks.bench_warehouse                                 # 1M, both backends
    python -m benchmarks.bench_warehouse --sizes 10000000 --backends postgres --timeout 3000
    python -m benchmarks.bench_warehouse --report                        # tables from the JSON
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_pipeline import (
    _kill_tree,
    _parse_list,
    _Sampler,
    _shopflow,
    _short,
    _tree_rss_bytes,
)
from benchmarks.machine import machine_info, print_report, write_json

logger = logging.getLogger(__name__)

BENCH_NAME = "warehouse"
BACKENDS = ("duckdb", "postgres")
DATA_STAGES = ("ingest", "gate_raw", "dbt_staging", "gate_staging", "dbt_intermediate",
               "dbt_marts", "gate_marts")
FLOOR_STEPS = ("floor_load", "floor_scan")
#: The memory guard stops a step only when the step itself holds this much (MiB).
GUARD_STEP_MIB = 2048


# ---- one step as a child process ----------------------------------------------------

def _available_mib() -> float:
    """The machine's ``MemAvailable`` in MiB (inf when /proc/meminfo cannot be read)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return math.inf


class _Guard(threading.Thread):
    """Kills a child's process group past its deadline or when it starves the machine.

    The machine may be shared: a 10M-event gate reads the layer into pandas (12-16 GiB,
    docs/performance.md), and letting it push the kernel into the OOM killer would take
    down whatever else runs there. When available memory is under ``min_available_mib``
    and the step itself holds at least :data:`GUARD_STEP_MIB`, the step is stopped and
    recorded as such; a small step is left alone (stopping it would free little, and the
    shortage is someone else's).
    """

    def __init__(self, pid: int, timeout: float, min_available_mib: float) -> None:
        super().__init__(name="bench-guard", daemon=True)
        self.pid = pid
        self.deadline = time.monotonic() + timeout
        self.min_available_mib = min_available_mib
        self.reason: str | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            if time.monotonic() >= self.deadline:
                self.reason = "timeout"
            elif (_available_mib() < self.min_available_mib
                  and _tree_rss_bytes(self.pid) >= GUARD_STEP_MIB * 2**20):
                self.reason = f"machine memory under {self.min_available_mib:,.0f} MiB"
            else:
                continue
            logger.warning("stopping the step (%s)", self.reason)
            _kill_tree(self.pid)
            return


def run_step(args: list[str], *, env: dict[str, str], log: Path, timeout: float,
             min_available_mib: float = 0.0) -> dict[str, Any]:
    """Run one child process to the end; its wall/CPU seconds, peak memory and load.

    The child's whole process group (dbt may start its own children) is killed past
    ``timeout`` seconds or when the machine's available memory falls under
    ``min_available_mib``; ``killed`` then says which.
    """
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        sampler = _Sampler(process.pid)
        sampler.start()
        guard = _Guard(process.pid, timeout, min_available_mib)
        guard.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            guard.stop.set()
            sampler.stop.set()
            sampler.join(timeout=5)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    process.returncode = code  # reaped by wait4: Popen must not think it still runs
    loads = [load_before, *sampler.loads, os.getloadavg()[0]]
    return {
        "exit_code": code,
        "seconds": round(seconds, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_tree_mib": round(max(sampler.peak_bytes, usage.ru_maxrss * 1024) / 2**20, 1),
        "load_1m": round(sum(loads) / len(loads), 2),
        "killed": guard.reason,
    }


def _batch_ids(log: Path) -> list[str]:
    """The batch ids ``shopflow ingest --json`` printed (the JSON is the log's tail)."""
    text = log.read_text()
    start = text.find("{")
    try:
        return list(json.loads(text[start:]).get("batch_ids") or []) if start >= 0 else []
    except ValueError:
        return []


def _steps(events_file: Path) -> list[tuple[str, list[str]]]:
    """The data stages in DAG order as CLI commands (gate_raw's batch id is filled later)."""
    cli = _shopflow()
    return [
        ("ingest", [*cli, "ingest", "--json", "--no-progress", "--path", str(events_file)]),
        ("gate_raw", [*cli, "quality", "--layer", "raw", "--failed-only"]),
        ("dbt_staging", [*cli, "transform", "--select", "staging"]),
        ("gate_staging", [*cli, "quality", "--layer", "staging", "--failed-only"]),
        ("dbt_intermediate", [*cli, "transform", "--select", "intermediate"]),
        ("dbt_marts", [*cli, "transform", "--select", "marts"]),
        ("gate_marts", [*cli, "quality", "--layer", "marts", "--failed-only"]),
    ]


def run_backend(backend: str, events: int, events_file: Path, *, work: Path,
                timeout: float, postgres_url: str,
                min_available_mib: float = 0.0) -> dict[str, Any]:
    """The floor, then the data stages, on one backend; stops at the first failed stage.

    ``timeout`` bounds the whole backend run: each step gets what is left of it, and a
    step that runs out is killed and recorded as ``timeout`` (the stages before it stand),
    likewise a step stopped because the machine ran short of memory.
    """
    home = work / f"home-{backend}-{events}"
    shutil.rmtree(home, ignore_errors=True)
    prefix = f"bench_{secrets.token_hex(4)}_"
    env = {**os.environ, "SHOPFLOW_HOME": str(home), "SHOPFLOW_WAREHOUSE__BACKEND": backend,
           "SHOPFLOW_WAREHOUSE__POSTGRES_URL": postgres_url,
           "SHOPFLOW_WAREHOUSE__SCHEMA_PREFIX": prefix if backend == "postgres" else ""}
    for name in ("SHOPFLOW_CONFIG", "SHOPFLOW_SOURCE__PATH", "AIRFLOW_HOME"):
        env.pop(name, None)
    result: dict[str, Any] = {"backend": backend, "events": events, "steps": {},
                              "state": "success", "failed": None,
                              "memory_limit": _memory_limit(backend)}
    deadline = time.monotonic() + timeout
    floor = [sys.executable, "-m", "benchmarks.bench_warehouse", "--floor-step"]
    plan = [(name, [*floor, name, str(events_file)]) for name in FLOOR_STEPS]
    plan += _steps(events_file)
    try:
        for name, args in plan:
            if name == "gate_raw":
                batches = _batch_ids(work / f"{backend}-{events}-ingest.log")
                args = [*args, "--batch-id", batches[0]] if len(batches) == 1 else args
            left = deadline - time.monotonic()
            log = work / f"{backend}-{events}-{name}.log"
            logger.info("%s %s: %s", backend, f"{events:,}", name)
            step = run_step(args, env=env, log=log, timeout=max(left, 1.0),
                            min_available_mib=min_available_mib)
            result["steps"][name] = step
            if step["exit_code"] != 0:
                result["state"] = step["killed"] or "failed"
                result["failed"] = name
                result["log_tail"] = log.read_text()[-2000:]
                break
    finally:
        result["peak_tree_mib"] = max((s["peak_tree_mib"] for s in result["steps"].values()),
                                      default=0.0)
        result["database"] = _database_size(backend, home, postgres_url, prefix)
        if backend == "postgres":
            _drop_schemas(postgres_url, prefix)
        shutil.rmtree(home, ignore_errors=True)
    return result


def _memory_limit(backend: str) -> str | None:
    """DuckDB's ``warehouse.memory_limit`` of this run (None: the default, or PostgreSQL)."""
    if backend != "duckdb":
        return None
    from shopflow.settings import load_settings

    return load_settings().warehouse.memory_limit


def _label(run: dict[str, Any]) -> str:
    """``duckdb 1M``, or ``duckdb 1M (limit 1GiB)`` when a memory limit was set."""
    limit = run.get("memory_limit")
    return f"{run['backend']} {_short(run['events'])}" + (f" (limit {limit})" if limit else "")


# ---- the floor (run as a child: python -m benchmarks.bench_warehouse --floor-step) ----

def floor_step(step: str, events_file: Path) -> None:
    """One floor step on the backend the environment's settings name.

    ``floor_load``: the events into ``<prefix>raw.floor_events`` as they are;
    ``floor_scan``: one aggregate over that table that must read every row (then the
    table is dropped).
    """
    from shopflow.settings import load_settings
    from shopflow.warehouse import DuckDBWarehouse, connect

    settings = load_settings()
    with connect(settings) as wh:
        table = wh.table("raw", "floor_events")
        if step == "floor_load":
            wh.ensure_schema(wh.schema("raw"))
            wh.execute(f"drop table if exists {table}")
            if isinstance(wh, DuckDBWarehouse):
                wh.execute(f"create table {table} as select * from read_parquet(:path)",
                           {"path": str(events_file)})
            else:
                import pandas as pd

                frame = pd.read_parquet(events_file)
                wh.create_table(table, {"user_id": "text", "item_id": "text",
                                        "event_type": "text", "event_time": "timestamp",
                                        "price": "double", "quantity": "integer",
                                        "order_id": "text", "category_id": "text"})
                wh.append_df(table, frame)
        elif step == "floor_scan":
            wh.scalar(f"select count(distinct user_id) + sum(price * quantity) from {table}")
            wh.execute(f"drop table {table}")  # not counted in the warehouse's size
        else:
            raise SystemExit(f"unknown floor step {step!r}")


# ---- PostgreSQL housekeeping and sizes -------------------------------------------------

def _drop_schemas(postgres_url: str, prefix: str) -> None:
    """Drop every schema this run created (``<prefix>raw``, ``<prefix>marts``, ...)."""
    import psycopg2

    with psycopg2.connect(postgres_url) as con, con.cursor() as cur:
        # a killed step's query keeps running in the server and holds its locks
        cur.execute("select pg_terminate_backend(pid) from pg_stat_activity "
                    "where pid <> pg_backend_pid() and position(%s in query) > 0", (prefix,))
        cur.execute("select nspname from pg_namespace where nspname like %s",
                    (prefix.replace("_", r"\_") + "%",))
        for (schema,) in cur.fetchall():
            cur.execute(f'drop schema if exists "{schema}" cascade')


def _database_size(backend: str, home: Path, postgres_url: str, prefix: str) -> float | None:
    """MiB the warehouse holds after the run (DuckDB file; PostgreSQL relations)."""
    try:
        if backend == "duckdb":
            files = list(home.rglob("*.duckdb"))
            return round(sum(f.stat().st_size for f in files) / 2**20, 1) if files else None
        import psycopg2

        with psycopg2.connect(postgres_url) as con, con.cursor() as cur:
            cur.execute("select coalesce(sum(pg_total_relation_size(c.oid)), 0) from pg_class c "
                        "join pg_namespace n on n.oid = c.relnamespace "
                        "where n.nspname like %s and c.relkind in ('r', 'm')",
                        (prefix.replace("_", r"\_") + "%",))
            row = cur.fetchone()
            return round(int(row[0]) / 2**20, 1) if row else None
    except Exception:  # a size is a nice-to-have beside the timings
        logger.warning("could not size the %s warehouse", backend, exc_info=True)
        return None


# ---- tables ---------------------------------------------------------------------------

def tables(runs: list[dict[str, Any]]) -> list[tuple[str, list[str], list[list[Any]]]]:
    """(title, headers, rows): per-step seconds/MiB/load, then totals beside the floor."""
    runs = sorted(runs, key=lambda r: (r["events"], r["backend"]))
    heads = [_label(r) for r in runs]
    step_rows: list[list[Any]] = []
    for name in (*FLOOR_STEPS, *DATA_STAGES):
        row: list[Any] = [name]
        for run in runs:
            step = run["steps"].get(name)
            if step is None:
                row.append("-")
                continue
            mark = "" if step["exit_code"] == 0 else f" ✗ ({step.get('killed') or 'failed'})"
            row.append(f"{step['seconds']:,.1f} s (cpu {step['cpu_s']:,.1f}) · "
                       f"{step['peak_tree_mib']:,.0f} MiB · load {step['load_1m']:.1f}{mark}")
        step_rows.append(row)
    total_rows: list[list[Any]] = []
    for run in runs:
        done = {k: v for k, v in run["steps"].items() if k in DATA_STAGES}
        dbt = sum(v["seconds"] for k, v in done.items() if k.startswith("dbt_"))
        gates = sum(v["seconds"] for k, v in done.items() if k.startswith("gate_"))
        floor = run["steps"].get("floor_load")
        ingest = done.get("ingest")
        total_rows.append([
            _label(run), f"{run['events']:,}", run["state"],
            round(sum(v["seconds"] for v in done.values()), 1),
            round(sum(v["cpu_s"] for v in done.values()), 1),
            ingest["seconds"] if ingest else "-", round(dbt, 1), round(gates, 1),
            floor["seconds"] if floor else "-",
            f"{ingest['seconds'] / floor['seconds']:.1f}x" if ingest and floor else "-",
            run["peak_tree_mib"], run.get("database") or "-",
        ])
    return [
        ("Data stages per backend (wall seconds (CPU seconds of the step's process tree; "
         "PostgreSQL's server CPU is not in it) · peak tree RSS · load average 1m while it "
         "ran; ✗ = failed or killed)", ["step", *heads], step_rows),
        ("Data stages in total, beside the floor",
         ["backend", "events", "state", "stages s", "stages cpu s", "ingest s", "dbt s", "gates s",
          "floor load s", "ingest / floor", "peak MiB", "warehouse MiB"], total_rows),
    ]


# ---- entry point ---------------------------------------------------------------------

def _key(run: dict[str, Any]) -> str:
    return f"{run['backend']}:{run['events']}:{run.get('memory_limit') or ''}"


def _load_previous(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {}
    try:
        return {_key(r): r for r in json.loads(path.read_text()).get("runs", [])}
    except (ValueError, KeyError, TypeError):
        logger.warning("ignoring unreadable %s", path)
        return {}


def _postgres_reachable(url: str) -> bool:
    """Whether the PostgreSQL server answers (``make bench`` runs where it may not)."""
    import psycopg2

    try:
        psycopg2.connect(url, connect_timeout=5).close()
    except psycopg2.Error as exc:
        logger.warning("PostgreSQL at the given URL is unreachable, skipping it: %s",
                       str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return False
    return True


def _generate(events: int, days: int, out: Path, work: Path) -> dict[str, Any]:
    """The synthetic events of one size, written once and shared by every backend."""
    env = {**os.environ, "SHOPFLOW_HOME": str(work / "generate")}
    args = [*_shopflow(), "generate", "--events", str(events), "--days", str(days),
            "--out", str(out), "--no-progress"]
    return run_step(args, env=env, log=work / f"generate-{events}.log", timeout=3600)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=lambda t: _parse_list(t, kind=int),
                        default=[1_000_000], help="Comma list of event counts (default 1000000).")
    parser.add_argument("--backends", type=lambda t: _parse_list(t, kind=str),
                        default=list(BACKENDS), help="Comma list: duckdb,postgres (default both).")
    parser.add_argument("--postgres-url", default=os.environ.get(
        "SHOPFLOW_WAREHOUSE__POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        help="PostgreSQL server for the postgres backend (a private schema prefix is used).")
    parser.add_argument("--days", type=int, default=120, help="Days of synthetic events.")
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="Seconds one backend at one size may run (all its steps).")
    parser.add_argument("--min-available-mib", type=float, default=1536.0,
                        help="Stop a step when the machine's available memory falls under "
                        "this (a shared machine's other work must not meet the OOM killer).")
    parser.add_argument("--report", action="store_true",
                        help="Only print the tables of the existing warehouse.json.")
    parser.add_argument("--floor-step", nargs=2, metavar=("STEP", "FILE"),
                        help=argparse.SUPPRESS)  # the floor's child process
    args = parser.parse_args(argv)
    if args.floor_step:
        floor_step(args.floor_step[0], Path(args.floor_step[1]))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    unknown = set(args.backends) - set(BACKENDS)
    if unknown:
        parser.error(f"unknown backends {sorted(unknown)}: use {', '.join(BACKENDS)}")

    if "postgres" in args.backends and not args.report \
            and not _postgres_reachable(args.postgres_url):
        args.backends.remove("postgres")
        if not args.backends:
            return 1
    home = Path(os.environ.get("SHOPFLOW_HOME", ".shopflow")).resolve()
    json_path = home / "bench" / f"{BENCH_NAME}.json"
    runs = _load_previous(json_path)
    if not args.report:
        home.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="bench-warehouse-", dir=home))
        try:
            for events in args.sizes:
                events_file = work / f"events-{events}.parquet"
                generated = _generate(events, args.days, events_file, work)
                if generated["exit_code"] != 0:
                    logger.error("generating %s events failed: see %s", f"{events:,}", work)
                    return 1
                for backend in args.backends:
                    result = run_backend(backend, events, events_file, work=work,
                                         timeout=args.timeout, postgres_url=args.postgres_url,
                                         min_available_mib=args.min_available_mib)
                    result["generate"] = generated
                    result["machine"] = machine_info()
                    runs[_key(result)] = result
                    logger.info("%s %s: %s", backend, f"{events:,}", result["state"])
                    write_json(home / "bench", BENCH_NAME, {"runs": list(runs.values())})
                events_file.unlink(missing_ok=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if not print_report(list(runs.values()), tables, json_path):
        return 1
    return 0 if all(r["state"] == "success" for r in runs.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
