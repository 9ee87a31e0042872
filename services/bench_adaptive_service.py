"""The Shopflow scoring path behind BentoML's own adaptive batching, for the benchmark only.

``benchmarks/bench_serving.py`` serves this beside ``ShopService`` to compare the two ways
of scoring concurrent requests together: Shopflow's natural micro-batcher
(``shopflow.serving.batching``, in ``ShopService``) and BentoML's adaptive batching
(``@bentoml.api(batchable=True)``: a dispatcher that waits up to ``max_latency_ms`` to
fill a batch, sized from the latencies it has seen). Both score through the same
:class:`~shopflow.serving.runtime.ServingRuntime` (same online read, same model call), so
the difference is the batching alone. A batchable endpoint takes and returns lists, so
this answers ``/predict`` with a bare list of probabilities, not the public response
body: it is a measuring device, not a second service.
"""

from __future__ import annotations

import bentoml

from shopflow.serving.options import SERVICE_OPTIONS, settle_heap
from shopflow.settings import load_settings

#: BentoML's batching bounds: the same largest batch as the micro-batcher's default
#: (serving.max_batch), and a generous latency budget: at 20 ms the dispatcher shed load
#: at 16 connections ("process is overloaded", 503) where the micro-batcher answered all.
MAX_BATCH_SIZE = 1000
MAX_LATENCY_MS = 100


@bentoml.service(name="shopflow_adaptive_batching", **SERVICE_OPTIONS)
class AdaptiveBatchingService:
    """``/predict`` with BentoML's adaptive batching over Shopflow's serving runtime."""

    def __init__(self) -> None:
        from shopflow.serving.runtime import ServingRuntime

        self.runtime = ServingRuntime(load_settings(), freeze_heap=True)
        self.runtime.start()
        settle_heap()

    @bentoml.on_shutdown
    def _shutdown(self) -> None:
        self.runtime.stop()

    def __is_ready__(self) -> bool:
        ready, _why = self.runtime.ready()
        return ready

    @bentoml.api(route="/predict", batchable=True, batch_dim=0,
                 max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS)
    async def predict(self, user_ids: list[str]) -> list[float]:
        """P(purchase) per id of the merged batch, in order (BentoML splits it back)."""
        _served, probabilities, _known = self.runtime.predict(user_ids)
        return [float(p) for p in probabilities]
