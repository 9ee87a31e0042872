"""Natural micro-batching: requests that arrive while a batch is scored are scored together.

A request pays a fixed cost for a feature lookup and a model call (Feast's registry and
protobufs, sklearn's input checks) that grows slowly with the number of users in it.
When requests overlap, this batcher merges them: the first request of an idle batcher is
scored after a few event-loop iterations (no timer, so no real added latency at low
load); every request that arrives while a batch is being scored goes, with all the other
waiting requests, into the next batch. Small batches are scored on the event loop, large
ones in one dedicated thread so the loop keeps serving I/O. Each caller gets its own
slice of the answer (every array the scorer returns, e.g. probabilities, known flags and
the feature rows) and the version of the model that scored its batch.

Measured in ``benchmarks/bench_serving.py`` (with and without: ``serving.batching``).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

logger = logging.getLogger(__name__)


class NaturalBatcher:
    """Coalesces concurrent ``score(ids)`` calls made on one event loop.

    Args:
        score: ``ids -> (model, *arrays)`` (e.g. probabilities, known, features); each
            array has one row per id, in ``ids`` order.
        max_ids: most ids merged into one call (a single larger request still goes alone).
        inline_ids: batches of at most this many ids are scored on the event loop itself
            (cheapest for small batches: no thread hop, no GIL hand-off); larger ones in
            the scoring thread, so the loop keeps serving I/O meanwhile.
        gather_ticks: event-loop iterations to wait before taking a batch, so requests
            already read off their sockets join it (no timer). Skipping the wait after
            batches of one was tried: it kept batches at one under load (req/s at 16
            connections fell by half) and did not win back the one-connection cost.
    """

    def __init__(self, score: Callable[[list[str]], tuple[Any, ...]], *, max_ids: int,
                 inline_ids: int = 0, gather_ticks: int = 0) -> None:
        self._score = score
        self._max_ids = max_ids
        self._inline_ids = inline_ids
        self._gather_ticks = gather_ticks
        self._waiting: list[tuple[list[str], asyncio.Future[Any]]] = []
        self._busy = False
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shopflow-score")
        self.batches = 0
        self.requests = 0

    async def __call__(self, ids: Sequence[str]) -> tuple[Any, ...]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._waiting.append((list(ids), future))
        if not self._busy:
            self._busy = True
            self._task = loop.create_task(self._drain())  # keep a reference: no early GC
        answer: tuple[Any, ...] = await future
        return answer

    def _take(self) -> list[tuple[list[str], asyncio.Future[Any]]]:
        taken = [self._waiting.pop(0)]
        total = len(taken[0][0])
        while self._waiting and total + len(self._waiting[0][0]) <= self._max_ids:
            item = self._waiting.pop(0)
            taken.append(item)
            total += len(item[0])
        return taken

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                for _ in range(self._gather_ticks):
                    await asyncio.sleep(0)  # let requests already read off sockets join
                batch = self._take()
                ids = [uid for request_ids, _ in batch for uid in request_ids]
                self.batches += 1
                self.requests += len(batch)
                try:
                    if len(ids) <= self._inline_ids:
                        model, *arrays = self._score(ids)
                    else:
                        model, *arrays = await loop.run_in_executor(
                            self._executor, self._score, ids
                        )
                except Exception as exc:  # every caller of the batch gets the error
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                start = 0
                for request_ids, future in batch:
                    end = start + len(request_ids)
                    if not future.done():
                        future.set_result((model, *(a[start:end] for a in arrays)))
                    start = end
        finally:
            self._busy = False

    def close(self, *, wait: bool = True) -> None:
        """Stop the scoring thread (queued work is finished first; ``wait=False``: without
        waiting for it, e.g. from the event loop)."""
        self._executor.shutdown(wait=wait, cancel_futures=False)
