"""BentoML service options shared by the Shopflow service and its benchmark twin.

Each option removes a per-request cost of BentoML's default request path (measured in
``benchmarks/bench_serving.py`` against a no-op endpoint and a bare Starlette app):

* ``metrics`` off — the Prometheus middleware times and counts every request in a
  multiprocess registry;
* BentoML's ``logging.access`` off — Shopflow writes its own access line, with hashed
  user ids (``shopflow.serving.middleware``);
* ``tracing.excluded_urls`` — the OpenTelemetry ASGI middleware builds spans for every
  request even when no exporter is configured; excluding the routes skips that work
  (roughly doubles a no-op endpoint's throughput here);
* one worker — on a 2-core machine the second core is for the feature store lookups,
  the scoring thread and the callers.
"""

from __future__ import annotations

from typing import Any

ROUTES = ["/predict", "/recommend", "/metadata", "/healthz", "/livez", "/readyz"]

SERVICE_OPTIONS: dict[str, Any] = {
    "workers": 1,
    "traffic": {"timeout": 30},
    "metrics": {"enabled": False},
    "logging": {"access": {"enabled": False}},
    "tracing": {"excluded_urls": ROUTES},
}


# Collector thresholds for the worker: young collections every 50k net allocations
# instead of 700, older ones more rarely (measured on the no-op twin, 16 connections:
# p99 ~137 ms -> ~36 ms; with the collector off entirely ~22 ms, which we do not risk).
GC_THRESHOLDS = (50_000, 50, 50)


def settle_heap(*, collect: bool = True) -> None:
    """Take the start-up heap out of the garbage collector's view and collect less often.

    A worker holds millions of long-lived objects (BentoML, Feast, pandas, the model).
    CPython's collections walk them, and each walk stalls the event loop: measured here,
    a no-op endpoint's p99 at one connection fell from ~135 ms to ~9 ms and its
    throughput rose ~50% once the start-up heap was frozen (``gc.freeze``); the higher
    thresholds cut the 16-connection tail further. Called after start-up (with a
    collection first) and after each hot swap (without: a full collection on the poller
    thread would itself stall requests).
    """
    import gc

    if collect:
        gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
