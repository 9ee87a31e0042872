"""Serving: the BentoML service's runtime (hot swap, shadow mode, front door).

The service itself is ``services/shop_service.py``; this package holds what it is
made of, importable without BentoML's server:

* :class:`shopflow.serving.alias_follower.AliasFollower` — follow a ledger alias: load,
  check, swap, or refuse and record (the hot swap, once for every served model);
* :class:`shopflow.serving.runtime.ServingRuntime` — the served propensity model;
* :class:`shopflow.serving.recommender.RecommenderRuntime` — the served recommender;
* :class:`shopflow.serving.served.ServedModel` / ``load_served_model`` — a loaded model;
* :class:`shopflow.serving.process.ServiceProcess` — ``bentoml serve`` as a child process;
* :func:`shopflow.serving.shadow.read_shadow_log` — shadow-mode records;
* :func:`shopflow.serving.prediction_log.read_prediction_log` — every served answer
  (``remove_user`` erases one shopper's rows);
* :mod:`shopflow.serving.metrics` — the service's own ``GET /metrics``.
"""

from __future__ import annotations

from typing import Any

from shopflow.lazy_exports import lazy_export

_EXPORTS = {
    "ServingRuntime": "shopflow.serving.runtime",
    "NoProductionModel": "shopflow.serving.runtime",
    "ServedModel": "shopflow.serving.served",
    "ModelRefused": "shopflow.serving.alias_follower",
    "AliasFollower": "shopflow.serving.alias_follower",
    "RecommenderRuntime": "shopflow.serving.recommender",
    "NoRecommender": "shopflow.serving.recommender",
    "load_served_model": "shopflow.serving.served",
    "ServiceProcess": "shopflow.serving.process",
    "ServiceStartError": "shopflow.serving.process",
    "read_shadow_log": "shopflow.serving.shadow",
    "read_prediction_log": "shopflow.serving.prediction_log",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    return lazy_export(__name__, _EXPORTS, name)
