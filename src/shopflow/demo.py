"""`make demo`: the whole flow on the embedded default, then a served model answering curl.

Starts ``shopflow serve`` on loopback first (nothing in production yet), then runs
``shopflow pipeline run`` (synthetic events -> dbt -> gates -> Feast -> training -> gate 2
-> registry -> deploy), whose deploy task finds the service and runs gate 3 on the promoted
model before production moves; prints gate 3's numbers, sends one real request and prints
the ``curl`` a user can repeat. On a terminal it keeps serving until Ctrl-C;
without one (CI, scripts) it stops the server and exits once the request succeeded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import httpx

from shopflow.serving.process import ServiceProcess, ServiceStartError
from shopflow.settings import load_settings

if TYPE_CHECKING:
    from pathlib import Path

    from shopflow.settings import Settings

DEMO_EVENTS = int(os.environ.get("SHOPFLOW_DEMO_EVENTS", "200000"))


def _step(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def _wait_ready(base_url: str, *, timeout: float) -> None:
    """Poll /readyz until the service has its model and features, or fail clearly.

    ``ServiceProcess.start`` already waited for /healthz (the process is up); ready also
    means the production model is loaded and its features are reachable.
    """
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{base_url}/readyz", timeout=2.0)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(1.0)
    raise SystemExit(f"the service was not ready after {timeout:.0f}s: {last}")


def _sample_user_ids(data_dir: Path, count: int = 3) -> list[str]:
    """A few users the model knows, plus one it does not (to show cold start)."""
    marts = data_dir / "marts" / "user_features.parquet"
    ids: list[str] = []
    if marts.is_file():
        import pandas as pd

        frame = pd.read_parquet(marts, columns=["user_id", "cutoff_time"])
        latest = frame[frame["cutoff_time"] == frame["cutoff_time"].max()]
        ids = latest["user_id"].astype(str).head(count).tolist()
    return [*ids, "no-such-user"]


def _gate3_line(settings: Settings) -> str:
    """What gate 3 did for the production model, from its ledger ``deployment`` event."""
    from shopflow.ledger import Ledger

    with Ledger(settings.ledger_url) as ledger:
        production = ledger.production()
        pending = ledger.pending()
        deployments = [e for e in ledger.events(kind="deployment")
                       if production is not None and e.version == production.version]
    if pending is not None:
        return f"gate 3: {pending.version} is still deploy pending (see `shopflow status`)"
    if not deployments:
        return "gate 3: no deployment recorded for the production model"
    report = deployments[-1].details
    return (f"gate 3 passed for {deployments[-1].version}: {report.get('requests')} requests, "
            f"error rate {report.get('error_rate')}, p99 {report.get('p99_ms')} ms, "
            f"swap {report.get('swap_seconds')} s")


def main() -> int:
    """Run the demo; returns the process exit code."""
    from shopflow.cli.pipeline import EXIT_DEPLOY_PENDING

    os.environ.setdefault("SHOPFLOW_GENERATOR__EVENTS", str(DEMO_EVENTS))
    settings = load_settings()
    settings.ensure_dirs()
    started = time.monotonic()

    # the service first: the run's deploy task finds it and runs gate 3 on the new model
    _step(f"starting the model service on port {settings.serving.port} (nothing to serve yet)")
    service = ServiceProcess(settings, port=settings.serving.port)
    try:
        service.start(wait=180)
    except ServiceStartError as exc:
        raise SystemExit(str(exc)) from exc
    with service:
        print(f"service log: {service.log_path}")
        _step(f"training pipeline on {DEMO_EVENTS:,} synthetic events "
              f"(SHOPFLOW_HOME={settings.home_dir})")
        result = subprocess.run([sys.executable, "-m", "shopflow.cli", "pipeline", "run"],
                                check=False)
        if result.returncode == EXIT_DEPLOY_PENDING:  # the service was not ready in time
            _step("deploying the pending candidate through gate 3")
            subprocess.run([sys.executable, "-m", "shopflow.cli", "deploy", "--pending",
                            "--wait", "60"], check=False)
        elif result.returncode != 0:
            print("\nThe pipeline did not finish; see the summary above.", file=sys.stderr)
            return result.returncode
        _step(_gate3_line(settings))
        _wait_ready(service.url, timeout=180)
        user_ids = _sample_user_ids(settings.data_dir)
        body = json.dumps({"user_ids": user_ids})
        response = httpx.post(f"{service.url}/predict", content=body,
                              headers={"Content-Type": "application/json"}, timeout=10)
        response.raise_for_status()
        _step("try it yourself:")
        print(f"curl -s -X POST {service.url}/predict -H 'Content-Type: application/json' "
              f"-d '{body}'")
        print(json.dumps(response.json(), indent=2))
        print(f"\nDemo finished in {time.monotonic() - started:.0f}s. "
              "`shopflow status` shows what is in production and why.")
        if sys.stdin.isatty() and os.environ.get("SHOPFLOW_DEMO_EXIT") != "1":
            print("Serving until Ctrl-C ...", flush=True)
            try:
                if service.process is not None:
                    service.process.wait()
            except KeyboardInterrupt:
                pass
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
