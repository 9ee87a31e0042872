"""Natural micro-batching: overlapping requests share a scoring call, each gets its slice."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from shopflow.serving.batching import NaturalBatcher


class _Scorer:
    """Scores ids as their integer value / 1000; blocks the first call until released."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.release = threading.Event()

    def __call__(self, ids: list[str]) -> tuple[str, np.ndarray, np.ndarray]:
        if not self.calls:
            self.release.wait(5)
        self.calls.append(list(ids))
        if "boom" in ids:
            raise RuntimeError("scoring failed")
        return "v1", np.array([int(i) / 1000 for i in ids]), np.ones(len(ids), dtype=bool)


def test_overlapping_requests_are_merged_and_split_back() -> None:
    scorer = _Scorer()
    batcher = NaturalBatcher(scorer, max_ids=100)

    async def run() -> list[tuple[str, np.ndarray, np.ndarray]]:
        first = asyncio.ensure_future(batcher(["1"]))
        await asyncio.sleep(0.05)  # the first batch is now blocked in the scorer
        others = [asyncio.ensure_future(batcher([str(10 * i), str(10 * i + 1)])) for i in range(1, 6)]
        await asyncio.sleep(0.05)
        scorer.release.set()
        return await asyncio.gather(first, *others)

    try:
        results = asyncio.run(run())
    finally:
        batcher.close()
    assert scorer.calls[0] == ["1"]
    assert len(scorer.calls) == 2  # the five waiting requests went together
    assert scorer.calls[1] == ["10", "11", "20", "21", "30", "31", "40", "41", "50", "51"]
    for i, (version, probabilities, known) in enumerate(results[1:], start=1):
        assert version == "v1"
        assert probabilities.tolist() == [10 * i / 1000, (10 * i + 1) / 1000]
        assert known.tolist() == [True, True]
    assert batcher.batches == 2 and batcher.requests == 6


def test_batches_respect_max_ids() -> None:
    scorer = _Scorer()
    batcher = NaturalBatcher(scorer, max_ids=4)

    async def run() -> None:
        first = asyncio.ensure_future(batcher(["1"]))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(batcher(["2", "3", "4"])) for _ in range(3)]
        await asyncio.sleep(0.05)
        scorer.release.set()
        await asyncio.gather(first, *rest)

    try:
        asyncio.run(run())
    finally:
        batcher.close()
    assert [len(c) for c in scorer.calls] == [1, 3, 3, 3]


def test_a_failing_batch_fails_its_callers_only() -> None:
    scorer = _Scorer()
    scorer.release.set()
    batcher = NaturalBatcher(scorer, max_ids=100)

    async def run() -> None:
        with pytest.raises(RuntimeError, match="scoring failed"):
            await batcher(["boom"])
        version, probabilities, _ = await batcher(["7"])
        assert version == "v1" and probabilities.tolist() == [0.007]

    try:
        asyncio.run(run())
    finally:
        batcher.close()


def test_small_batches_score_on_the_loop_and_gather_waiting_requests() -> None:
    scorer = _Scorer()
    scorer.release.set()
    batcher = NaturalBatcher(scorer, max_ids=10, inline_ids=10, gather_ticks=3)
    loop_thread: list[str] = []
    original = scorer.__call__

    def recording(ids: list[str]) -> tuple[str, np.ndarray, np.ndarray]:
        loop_thread.append(threading.current_thread().name)
        return original(ids)

    batcher._score = recording  # observe which thread scores

    async def run() -> list[tuple[str, np.ndarray, np.ndarray]]:
        return await asyncio.gather(*(batcher([str(i)]) for i in range(5)),
                                    batcher([str(100 + i) for i in range(20)]))

    try:
        results = asyncio.run(run())
    finally:
        batcher.close()
    assert [r[1].tolist() for r in results[:5]] == [[i / 1000] for i in range(5)]
    assert results[5][1].tolist() == [(100 + i) / 1000 for i in range(20)]
    # five one-id requests went together, on the loop; the 20-id request alone, in the thread
    assert [len(c) for c in scorer.calls] == [5, 20]
    assert loop_thread[0] == threading.main_thread().name
    assert loop_thread[1].startswith("shopflow-score")

