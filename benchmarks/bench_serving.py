"""Serving benchmark: ``/predict`` and ``/recommend`` beside the floors they cannot beat.

Servers, each a real process on a loopback port, measured one after another:

* ``starlette`` — a bare Starlette app on uvicorn answering a fixed body (the ASGI floor);
* ``bentoml-noop-default`` — a BentoML no-op endpoint with BentoML's defaults;
* ``bentoml-noop`` — a no-op twin of the Shopflow service: same BentoML options,
  middleware and IO spec, nothing behind it (the floor of the service as configured);
* ``propensity`` — the real service: Feast online store (SQLite), a baseline model, the
  ledger, with micro-batching on; ``propensity-nobatch`` the same with it off;
  ``propensity-library`` with the compiled predictor off (``serving.compiled``: the
  library's predict); ``propensity-adaptive`` the same runtime behind BentoML's adaptive
  batching instead of the micro-batcher (``services/bench_adaptive_service.py``). The
  ``propensity`` server (and ``propensity-bento``) also answers ``POST /recommend`` (k=10, a known user) from a
  stored sandbox recommender with a 30-item precomputed list per user. The prediction
  log and ``/metrics`` are on in every ``propensity*`` server (the defaults);
  ``propensity-quiet`` has both off, ``propensity-nolog`` only the log off and
  ``propensity-nometrics`` only the metrics off: their cost is the difference
  (target: both together cost at most 10% of req/s at 1 user x 16 conns);
  ``propensity-ab`` runs an A/B test (``serving.experiment``) with the benchmark's first
  shopper in the challenger arm (answered by a second model), ``propensity-ab-champion``
  with it in the champion arm: the split's cost beside ``propensity`` (no test).
* ``propensity-bento`` — the same model and recommender packaged by ``shopflow package``
  (``shopflow.serving.bento``) and served with ``bentoml serve <tag>`` from an empty
  folder, pinned instead of following the ledger; the Bento's size (its folder, and the
  ``bentoml export`` archive that also holds the models) is reported beside the table.

Load: ``wrk`` (Debian's package) for a fixed duration per cell, 1 or 100 user ids per
request (``/recommend``: one user, k=10), 1 or 16 connections; an httpx-based async generator when wrk is missing. All
servers run at once and each cell is measured on every server in turn, so background load
on a shared machine drifts less between the servers being compared.
Results: a Markdown table and ``SHOPFLOW_HOME/bench/serving.json``.

Run: ``python -m benchmarks.bench_serving [--duration 10] [--users 2000] [--only NAME...]
[--request-sizes 1 100] [--skip-recommend]`` (the observability cells alone:
``--only bentoml-noop propensity propensity-quiet propensity-nolog propensity-nometrics
--request-sizes 1 --skip-recommend``; the Bento beside the hot-swap service:
``--only propensity propensity-bento``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.machine import print_table, write_json

logger = logging.getLogger("benchmarks.bench_serving")

REPO = Path(__file__).resolve().parents[1]
ADAPTIVE_TARGET = "bench_adaptive_service:AdaptiveBatchingService"
# Targets of "Faster answers" (measured, never asserted in tests):
TARGET_P99_MS = 5.0  # /predict, 1 user x 16 conns
TARGET_NOOP_SHARE = 0.80  # of the tuned no-op's req/s at 1 user x 16 conns
TARGET_ONE_CONN_P50_MS = 0.6  # /predict, 1 user x 1 conn
TARGET_BATCH_P99_MS = 20.0  # /predict, 100 users x 16 conns
TARGET_OBSERVABILITY_COST = 0.10  # prediction log + /metrics, share of req/s at 1 user x 16


def make_bare_app() -> Any:
    """The ASGI floor: Starlette, one route, a fixed JSON body (uvicorn ``--factory``)."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    body = b'{"model_version":"noop","predictions":[]}'

    async def predict(request: Any) -> Response:
        await request.body()
        return Response(body, media_type="application/json")

    async def healthz(request: Any) -> Response:
        return Response(b"\n")

    return Starlette(routes=[Route("/predict", predict, methods=["POST"]),
                             Route("/healthz", healthz)])


@dataclass
class Cell:
    """One measured combination."""

    server: str
    users: int
    connections: int
    seconds: float
    requests: int
    errors: int
    rps: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    tool: str
    endpoint: str = "/predict"
    cpu_us: float | None = None  # server CPU (all its processes) per request, in µs


# ---- load generators -----------------------------------------------------------------
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"unparseable wrk latency {text!r}")
    return round(float(match.group(1)) * _UNIT_MS[match.group(2)], 3)


def run_wrk(url: str, body: bytes, *, connections: int, seconds: float,
            headers: dict[str, str]) -> dict[str, Any]:
    """One wrk run; returns requests, errors, rps and latency percentiles."""
    script_lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body.decode())}"]
    script_lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write("\n".join(script_lines) + "\n")
        script = handle.name
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
             "-s", script, url],
            capture_output=True, text=True, timeout=seconds + 60, check=True,
        ).stdout
    finally:
        os.unlink(script)
    percentiles = {int(p): _ms(v) for p, v in re.findall(r"^\s+(\d+)%\s+(\S+)$", out, re.M)}
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    return {
        "requests": requests,
        "errors": errors,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": percentiles.get(50),
        "p90_ms": percentiles.get(90),
        "p99_ms": percentiles.get(99),
        "tool": "wrk",
    }


def run_httpx(url: str, body: bytes, *, connections: int, seconds: float,
              headers: dict[str, str]) -> dict[str, Any]:
    """Fallback load generator: ``connections`` async callers for ``seconds``."""
    import httpx

    latencies: list[float] = []
    errors = 0

    async def caller(client: httpx.AsyncClient, deadline: float) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                response = await client.post(url, content=body, headers=headers)
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - started)
            errors += not ok

    async def main() -> float:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            started = time.perf_counter()
            deadline = started + seconds
            await asyncio.gather(*(caller(client, deadline) for _ in range(connections)))
            return time.perf_counter() - started

    elapsed = asyncio.run(main())
    ordered = sorted(latencies)

    def q(p: float) -> float | None:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else None

    return {"requests": len(ordered), "errors": errors, "rps": len(ordered) / elapsed,
            "p50_ms": q(0.50), "p90_ms": q(0.90), "p99_ms": q(0.99), "tool": "httpx"}


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds (user + system) used so far by ``root`` and its live descendants.

    Covers ``bentoml serve`` and its workers (circus starts them in sessions of their own,
    so the tree is followed by parent ids). CPU per request depends far less on what else
    the shared machine runs than req/s does: it is how the cost of a per-request feature
    is compared on a noisy machine.
    """
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    used: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parent[pid] = int(fields[1])  # fields after the name: state ppid pgrp session ...
        used[pid] = int(fields[11]) + int(fields[12])  # utime, stime
    tree, frontier = {root}, [root]
    while frontier:
        frontier = [pid for pid, ppid in parent.items() if ppid in frontier and pid not in tree]
        tree.update(frontier)
    return sum(used.get(pid, 0) for pid in tree) / tick


# ---- servers ---------------------------------------------------------------------------
class Server:
    """A server process on a free loopback port, stopped on exit."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], cwd: Path,
                 port: int, log: Path) -> None:
        self.name, self.command, self.env, self.cwd, self.port, self.log = (
            name, command, env, cwd, port, log)
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self) -> Server:
        from shopflow.serving.process import ServiceProcess

        self.log.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.log, "ab")  # noqa: SIM115 - owned by the child's lifetime
        self.process = subprocess.Popen(self.command, env=self.env, cwd=self.cwd,
                                        stdout=handle, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        handle.close()
        waiter = ServiceProcess.__new__(ServiceProcess)  # reuse its bounded health wait
        waiter.process, waiter.host, waiter.port, waiter.log_path = (
            self.process, "127.0.0.1", self.port, self.log)
        try:
            waiter.wait_healthy(timeout=300)
        except BaseException:
            self.__exit__()
            raise
        return self

    def cpu_seconds(self) -> float:
        """CPU used so far by the server's processes."""
        return tree_cpu_seconds(self.process.pid) if self.process is not None else 0.0

    def __exit__(self, *_exc: object) -> None:
        import signal

        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self.process = None


def _ready(url: str, headers: dict[str, str], timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", headers=headers, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} never became ready")


def package_bento(settings: Any, bench_dir: Path) -> dict[str, Any]:
    """``shopflow package`` the sandbox's production model; its tag and sizes."""
    from shopflow.serving.bento import package

    started = time.monotonic()
    packaged = package(settings).asdict()
    seconds = time.monotonic() - started
    archive = bench_dir / "bento" / "shop.bento"
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.unlink(missing_ok=True)
    program = Path(sys.executable).with_name("bentoml")
    subprocess.run([str(program), "export", packaged["bento"], str(archive)], check=True,
                   capture_output=True, timeout=300,
                   env={**os.environ, "BENTOML_HOME": str(settings.bentoml_home)})
    logger.info("packaged %s in %.1f s", packaged["bento"], seconds)
    empty = bench_dir / "bento" / "empty"  # the served Bento's working folder
    shutil.rmtree(empty, ignore_errors=True)
    empty.mkdir()
    return {**packaged, "build_s": round(seconds, 2), "archive_bytes": archive.stat().st_size,
            "serve_cwd": str(empty)}


def packaged_server(facts: dict[str, Any] | None, base_env: dict[str, str]
                    ) -> tuple[list[str], dict[str, str], Path]:
    """``bentoml serve <tag>`` from an empty folder, without the repository on the path."""
    from shopflow.serving.process import free_port, serve_command

    assert facts is not None, "the Bento was not built"
    empty = Path(facts["serve_cwd"])
    env = {k: v for k, v in base_env.items() if k != "PYTHONPATH"}
    return serve_command(host="127.0.0.1", port=free_port(), target=facts["bento"],
                         working_dir=empty), env, empty


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per cell")
    parser.add_argument("--users", type=int, default=2000, help="users in the online store")
    parser.add_argument("--only", nargs="*", default=None, help="server names to run")
    parser.add_argument("--request-sizes", nargs="+", type=int, default=[1, 100],
                        choices=[1, 100], help="user ids per /predict request")
    parser.add_argument("--skip-recommend", action="store_true", help="no /recommend cells")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    from shopflow.serving.process import SERVICE_TARGET, free_port, serve_command, service_env
    from shopflow.serving.sandbox import build_recommender_sandbox, build_sandbox
    from shopflow.settings import load_settings

    outer = load_settings()
    bench_dir = outer.home_dir / "bench"
    work = bench_dir / "serving_state"
    shutil.rmtree(work, ignore_errors=True)
    settings = load_settings(home=work)
    started = time.monotonic()
    # the A/B server's challenger is the first model (production is the last)
    ab = not args.only or any(name.startswith("propensity-ab") for name in args.only)
    sandbox = build_sandbox(settings, users=args.users, models=2 if ab else 1)
    recommender = build_recommender_sandbox(settings, sandbox.user_ids)
    logger.info("sandbox (%d users, model %s, recommender %s) in %.0f s", args.users,
                sandbox.versions[-1], recommender.versions[0], time.monotonic() - started)
    generator = run_wrk if shutil.which("wrk") else run_httpx
    if generator is run_httpx:
        logger.warning("wrk not found (apt-get install -y wrk): using the slower httpx generator")

    bento_facts = None
    if not args.only or "propensity-bento" in args.only:
        bento_facts = package_bento(settings, bench_dir)
    base_env = service_env(settings, inherit_shopflow_env=False)
    base_env["PYTHONPATH"] = os.pathsep.join([str(REPO), base_env.get("PYTHONPATH", "")])
    bodies = {n: json.dumps({"user_ids": (sandbox.user_ids * 2)[:n]}).encode() for n in (1, 100)}
    recommend_body = json.dumps({"user_id": recommender.user_ids[len(recommender.user_ids) // 2],
                                 "k": 10}).encode()

    def bento(target: str, extra: dict[str, str] | None = None) -> tuple[list[str], dict[str, str], Path]:
        port = free_port()
        env = {**base_env, **(extra or {})}
        return serve_command(host="127.0.0.1", port=port, target=target,
                             working_dir=REPO / "services"), env, REPO / "services"

    def ab_env(*, challenger_arm: bool) -> dict[str, str]:
        """An A/B test whose share puts the 1-user body's shopper in the arm asked for."""
        from shopflow.serving.experiment import arm_position, salt_key

        salt = "bench"
        position = arm_position(salt_key(salt), sandbox.user_ids[0])
        share = (1 + position) / 2 if challenger_arm else position / 2
        return {"SHOPFLOW_SERVING__EXPERIMENT__ENABLED": "true",
                "SHOPFLOW_SERVING__EXPERIMENT__SALT": salt,
                "SHOPFLOW_SERVING__EXPERIMENT__SHARE": repr(share),
                "SHOPFLOW_SERVING__EXPERIMENT__CHALLENGER": sandbox.versions[0]}

    servers: list[tuple[str, Any]] = [
        ("starlette", lambda: ([sys.executable, "-m", "uvicorn", "--factory",
                                "benchmarks.bench_serving:make_bare_app", "--host", "127.0.0.1",
                                "--port", "{port}", "--no-access-log", "--log-level", "warning"],
                               base_env, REPO)),
        ("bentoml-noop-default", lambda: bento("bench_noop_service:NoopDefaultService")),
        ("bentoml-noop", lambda: bento("bench_noop_service:NoopService")),
        ("propensity", lambda: bento(SERVICE_TARGET)),
        ("propensity-quiet", lambda: bento(SERVICE_TARGET, {
            "SHOPFLOW_SERVING__PREDICTION_LOG": "false", "SHOPFLOW_SERVING__METRICS": "false"})),
        ("propensity-nolog", lambda: bento(SERVICE_TARGET,
                                           {"SHOPFLOW_SERVING__PREDICTION_LOG": "false"})),
        ("propensity-nometrics", lambda: bento(SERVICE_TARGET,
                                               {"SHOPFLOW_SERVING__METRICS": "false"})),
        ("propensity-ab", lambda: bento(SERVICE_TARGET, ab_env(challenger_arm=True))),
        ("propensity-ab-champion", lambda: bento(SERVICE_TARGET,
                                                 ab_env(challenger_arm=False))),
        ("propensity-nobatch", lambda: bento(SERVICE_TARGET,
                                             {"SHOPFLOW_SERVING__BATCHING": "false"})),
        ("propensity-library", lambda: bento(SERVICE_TARGET,
                                             {"SHOPFLOW_SERVING__COMPILED": "false"})),
        ("propensity-adaptive", lambda: bento(ADAPTIVE_TARGET)),
        ("propensity-bento", lambda: packaged_server(bento_facts, base_env)),
    ]
    cells: list[Cell] = []
    with contextlib.ExitStack() as stack:
        running: list[Server] = []
        for name, spec in servers:  # all up front, so the cells can interleave servers
            if args.only and name not in args.only:
                continue
            command, env, cwd = spec()
            port = free_port() if "{port}" in command else int(command[command.index("--port") + 1])
            command = [c.replace("{port}", str(port)) for c in command]
            logger.info("starting %s", name)
            server = stack.enter_context(
                Server(name, command, env, cwd, port, bench_dir / "logs" / f"{name}.log"))
            if name.startswith("propensity"):
                _ready(server.url, {})
            running.append(server)
        # The machine is shared: measuring every server for one cell before moving on keeps
        # slow drifts in background load from masquerading as differences between servers.
        for users in args.request_sizes:
            for connections in (1, 16):
                for server in running:
                    url = f"{server.url}/predict"
                    headers = {"Content-Type": "application/json"}
                    generator(url, bodies[users], connections=connections, seconds=1,
                              headers=headers)  # warm-up
                    cpu = server.cpu_seconds()
                    result = generator(url, bodies[users], connections=connections,
                                       seconds=args.duration, headers=headers)
                    cpu = server.cpu_seconds() - cpu
                    cell = Cell(server=server.name, users=users, connections=connections,
                                seconds=args.duration, **result,
                                cpu_us=round(cpu / max(1, result["requests"]) * 1e6, 1))
                    logger.info("%s", cell)
                    cells.append(cell)
        # /recommend k=10: a dictionary lookup and a slice behind the same front door
        for connections in () if args.skip_recommend else (1, 16):
            for server in running:
                if server.name not in ("propensity", "propensity-bento"):
                    continue
                url = f"{server.url}/recommend"
                headers = {"Content-Type": "application/json"}
                generator(url, recommend_body, connections=connections, seconds=1,
                          headers=headers)  # warm-up
                result = generator(url, recommend_body, connections=connections,
                                   seconds=args.duration, headers=headers)
                cell = Cell(server=server.name, users=1, connections=connections,
                            seconds=args.duration, endpoint="/recommend", **result)
                logger.info("%s", cell)
                cells.append(cell)
    cells.sort(key=lambda c: (c.endpoint != "/predict", [s for s, _ in servers].index(c.server),
                              c.users, c.connections))

    rows = [[c.server, c.endpoint, c.users, c.connections, c.rps, c.p50_ms, c.p90_ms, c.p99_ms,
             c.cpu_us, c.errors, c.tool] for c in cells]
    print_table("Serving: /predict and /recommend k=10 (loopback, fixed duration per cell)",
                ["server", "endpoint", "users/req", "conns", "req/s", "p50 ms", "p90 ms",
                 "p99 ms", "server CPU µs/req", "errors", "tool"], rows)
    verdict = _targets(cells)
    for line in verdict["lines"]:
        print(line)
    if bento_facts is not None:
        print(f"\nBento {bento_facts['bento']}: folder {bento_facts['size_bytes'] / 1e6:.2f} MB "
              f"(service, shopflow package, lock file; models referenced in the store), "
              f"exported archive with the models {bento_facts['archive_bytes'] / 1e6:.2f} MB")
    path = write_json(bench_dir, "serving", {
        "duration_s": args.duration, "online_users": args.users,
        "cells": [asdict(c) for c in cells], "targets": verdict, "bento": bento_facts,
    })
    print(f"\nJSON: {path}")
    return 0


def _targets(cells: list[Cell]) -> dict[str, Any]:
    """Check the targets on the service's cells, and which batching is faster."""
    def find(server: str, users: int = 1, connections: int = 16) -> Cell | None:
        return next((c for c in cells if c.server == server and c.users == users
                     and c.connections == connections and c.endpoint == "/predict"), None)

    service, noop = find("propensity"), find("bentoml-noop")
    result: dict[str, Any] = {"p99_target_ms": TARGET_P99_MS, "noop_share_target": TARGET_NOOP_SHARE,
                              "one_conn_p50_target_ms": TARGET_ONE_CONN_P50_MS,
                              "batch_p99_target_ms": TARGET_BATCH_P99_MS, "lines": []}
    if service is None or noop is None:
        result["lines"].append("targets: not evaluated (need propensity and bentoml-noop)")
        return result

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    share = service.rps / noop.rps if noop.rps else 0.0
    result.update(p99_ms=service.p99_ms, noop_share=round(share, 3),
                  p99_ok=service.p99_ms is not None and service.p99_ms <= TARGET_P99_MS,
                  share_ok=share >= TARGET_NOOP_SHARE)
    result["lines"].append(
        f"target p99 <= {TARGET_P99_MS} ms at 1 user x 16 conns: {service.p99_ms} ms "
        f"({verdict(result['p99_ok'])})")
    result["lines"].append(
        f"target >= {TARGET_NOOP_SHARE:.0%} of no-op req/s: {share:.0%} "
        f"({service.rps:,.0f} vs {noop.rps:,.0f}; {verdict(result['share_ok'])})")
    one, batch = find("propensity", 1, 1), find("propensity", 100, 16)
    if one is not None and one.p50_ms is not None:
        result["one_conn_p50_ok"] = one.p50_ms <= TARGET_ONE_CONN_P50_MS
        result["lines"].append(f"target p50 <= {TARGET_ONE_CONN_P50_MS} ms at 1 user x 1 conn: "
                               f"{one.p50_ms} ms ({verdict(result['one_conn_p50_ok'])})")
    if batch is not None and batch.p99_ms is not None:
        result["batch_p99_ok"] = batch.p99_ms <= TARGET_BATCH_P99_MS
        result["lines"].append(f"target p99 <= {TARGET_BATCH_P99_MS} ms at 100 users x 16 conns: "
                               f"{batch.p99_ms} ms ({verdict(result['batch_p99_ok'])})")
    # the prediction log and /metrics: what they cost against the same server without them
    quiet = find("propensity-quiet")
    if quiet is not None and quiet.rps:
        cost = 1 - service.rps / quiet.rps
        result.update(observability_cost=round(cost, 3),
                      observability_ok=cost <= TARGET_OBSERVABILITY_COST)
        parts = [f"{name.removeprefix('propensity-')} {c.rps:,.0f}"
                 for name in ("propensity-nolog", "propensity-nometrics")
                 if (c := find(name)) is not None]
        result["lines"].append(
            f"target prediction log + /metrics cost <= {TARGET_OBSERVABILITY_COST:.0%} of req/s "
            f"at 1 user x 16 conns: {cost:.1%} ({service.rps:,.0f} with both vs "
            f"{quiet.rps:,.0f} without{'; ' + ', '.join(parts) if parts else ''}; "
            f"{verdict(result['observability_ok'])})")
        if service.cpu_us and quiet.cpu_us:
            cpu_cost = service.cpu_us / quiet.cpu_us - 1
            result["observability_cpu_cost"] = round(cpu_cost, 3)
            cpu_parts = [f"{name.removeprefix('propensity-')} {c.cpu_us:.0f}"
                         for name in ("propensity-nolog", "propensity-nometrics")
                         if (c := find(name)) is not None and c.cpu_us]
            result["lines"].append(
                f"  the same in server CPU per request (less sensitive to other load): "
                f"+{cpu_cost:.1%} ({service.cpu_us:.0f} vs {quiet.cpu_us:.0f} µs"
                f"{'; ' + ', '.join(cpu_parts) if cpu_parts else ''})")
    # the micro-batcher against BentoML's adaptive batching, same runtime behind both
    duels = [(find("propensity", users, 16), find("propensity-adaptive", users, 16))
             for users in (1, 100)]
    scored = [(ours, theirs) for ours, theirs in duels if ours is not None and theirs is not None]
    if scored:
        wins = sum(ours.rps >= theirs.rps for ours, theirs in scored)
        result["batching_winner"] = "natural" if wins * 2 >= len(scored) else "adaptive"
        result["lines"].append(
            "batching at 16 conns (req/s, natural micro-batcher vs BentoML adaptive): "
            + "; ".join(f"{ours.users} user(s) {ours.rps:,.0f} vs {theirs.rps:,.0f}"
                        for ours, theirs in scored)
            + f" -> {result['batching_winner']} is faster")
    return result


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
