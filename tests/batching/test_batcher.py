"""DynamicBatcher with a recording runtime: exact splitting, stacking rules, flush causes, admission."""

from __future__ import annotations

import asyncio
from collections import Counter
from time import perf_counter

import numpy as np
import pytest

from inferlab.batching.batcher import DynamicBatcher
from inferlab.batching.instances import InstancePool
from inferlab.batching.policy import BatchPolicy
from inferlab.errors import DeadlineExceeded, Overloaded
from inferlab.messages import InferRequest
from tests.batching.conftest import Recorder, RecordingRuntime, expected


class Flushes:
    def __init__(self) -> None:
        self.causes: Counter[str] = Counter()
        self.depths: list[int] = []

    def flushed(self, cause: str, rows: int) -> None:
        self.causes[cause] += 1

    def queue_depth(self, depth: int) -> None:
        self.depths.append(depth)


def make(recorder: Recorder, policy: BatchPolicy, instances: int = 1, queue: int = 0) -> tuple[DynamicBatcher, Flushes]:
    flushes = Flushes()
    pool = InstancePool("rec", [RecordingRuntime(recorder) for _ in range(instances)])
    return DynamicBatcher("model 'rec'", pool, policy, queue, flushes), flushes


def request(x: np.ndarray, timeout_s: float = 0.0) -> tuple[InferRequest, float]:
    req = InferRequest("rec", None, {"x": x})
    return req, (perf_counter() + timeout_s if timeout_s else 0.0)


def test_concurrent_mixed_size_requests_get_exactly_their_own_rows(recorder: Recorder) -> None:
    batcher, _ = make(recorder, BatchPolicy(16, 0.002), instances=2)
    rng = np.random.default_rng(7)
    # each request's rows carry its own id, so a stray row from another request would show
    xs = [np.full((int(rng.integers(1, 6)), 3), i, dtype=np.float32) + np.arange(3) for i in range(60)]

    async def main() -> list[dict[str, np.ndarray]]:
        return await asyncio.gather(*(batcher.run(*request(x)) for x in xs))

    replies = asyncio.run(main())
    for x, reply in zip(xs, replies, strict=True):
        np.testing.assert_array_equal(reply["y"], expected(x))
    assert sum(recorder.rows) == sum(len(x) for x in xs)
    assert max(recorder.rows) > 5, "requests were batched together"
    assert max(recorder.rows) <= 16


def test_requests_that_cannot_stack_run_apart(recorder: Recorder) -> None:
    batcher, _ = make(recorder, BatchPolicy(16, 0.005))
    xs = [np.ones((1, 3), np.float32), np.ones((2, 4), np.float32), np.ones((1, 3), np.float32)]

    async def main() -> list[dict[str, np.ndarray]]:
        return await asyncio.gather(*(batcher.run(*request(x)) for x in xs))

    replies = asyncio.run(main())
    for x, reply in zip(xs, replies, strict=True):
        np.testing.assert_array_equal(reply["y"], expected(x))
    assert sorted(recorder.batches) == [(1, 3), (1, 3), (2, 4)]


def test_partial_batch_flushes_after_max_queue_delay(recorder: Recorder) -> None:
    batcher, flushes = make(recorder, BatchPolicy(8, 0.02))
    reqs = [request(np.zeros((1, 2), np.float32)) for _ in range(3)]

    async def main() -> None:
        await asyncio.gather(*(batcher.run(*r) for r in reqs))

    asyncio.run(main())
    assert recorder.rows == [3]
    assert flushes.causes == {"delay": 1}
    waited = reqs[0][0].timings.batch_start - reqs[0][0].timings.enqueued
    assert 0.02 <= waited < 0.5


def test_full_batch_flushes_without_waiting_for_the_delay(recorder: Recorder) -> None:
    batcher, flushes = make(recorder, BatchPolicy(4, 5.0))
    reqs = [request(np.zeros((1, 2), np.float32)) for _ in range(8)]

    async def main() -> None:
        await asyncio.wait_for(asyncio.gather(*(batcher.run(*r) for r in reqs)), 2.0)

    asyncio.run(main())
    assert recorder.rows == [4, 4]
    assert flushes.causes == {"full": 2}


def test_preferred_size_flushes_early(recorder: Recorder) -> None:
    batcher, flushes = make(recorder, BatchPolicy(16, 5.0, frozenset({2})))
    reqs = [request(np.zeros((1, 2), np.float32)) for _ in range(4)]

    async def main() -> None:
        await asyncio.wait_for(asyncio.gather(*(batcher.run(*r) for r in reqs)), 2.0)

    asyncio.run(main())
    assert recorder.rows == [2, 2]
    assert flushes.causes == {"preferred": 2}


def test_requests_queue_while_the_instance_is_busy_and_then_run_as_one_batch(recorder: Recorder) -> None:
    batcher, flushes = make(recorder, BatchPolicy(8, 0.0))
    recorder.gate.clear()

    async def main() -> None:
        first = asyncio.ensure_future(batcher.run(*request(np.zeros((1, 2), np.float32))))
        while not recorder.started.is_set():
            await asyncio.sleep(0.001)
        rest = [asyncio.ensure_future(batcher.run(*request(np.zeros((1, 2), np.float32)))) for _ in range(5)]
        await asyncio.sleep(0.005)
        assert batcher.depth == 5
        recorder.gate.set()
        await asyncio.gather(first, *rest)

    asyncio.run(main())
    assert recorder.rows == [1, 5]
    assert flushes.depths[-1] == 0


def test_full_queue_is_refused_at_once(recorder: Recorder) -> None:
    batcher, _ = make(recorder, BatchPolicy(), queue=2)
    recorder.gate.clear()

    async def main() -> None:
        running = asyncio.ensure_future(batcher.run(*request(np.zeros((1, 2), np.float32))))
        while not recorder.started.is_set():
            await asyncio.sleep(0.001)
        queued = [asyncio.ensure_future(batcher.run(*request(np.zeros((1, 2), np.float32)))) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(Overloaded, match="overloaded: 2 requests are queued") as info:
            await batcher.run(*request(np.zeros((1, 2), np.float32)))
        assert info.value.retry_after_s >= 1
        recorder.gate.set()
        await asyncio.gather(running, *queued)

    asyncio.run(main())
    assert recorder.rows == [1, 1, 1]


def test_request_that_expires_in_the_queue_is_never_run(recorder: Recorder) -> None:
    batcher, flushes = make(recorder, BatchPolicy())
    recorder.gate.clear()

    async def main() -> None:
        running = asyncio.ensure_future(batcher.run(*request(np.zeros((1, 2), np.float32))))
        while not recorder.started.is_set():
            await asyncio.sleep(0.001)
        start = perf_counter()
        with pytest.raises(DeadlineExceeded, match="timed out after waiting"):
            await batcher.run(*request(np.ones((7, 2), np.float32), timeout_s=0.01))
        assert perf_counter() - start < 0.5, "the 504 comes when the deadline passes, not when the queue moves"
        assert batcher.depth == 0
        assert flushes.depths[-1] == 0, "the expiry is seen by the queue-depth gauge"
        recorder.gate.set()
        await running

    asyncio.run(main())
    assert recorder.rows == [1]


def test_inline_fast_path_for_a_tiny_model_keeps_results_exact(recorder: Recorder) -> None:
    batcher, flushes = make(recorder, BatchPolicy())

    async def main() -> None:
        for i in range(20):
            x = np.full((2, 2), i, np.float32)
            reply = await batcher.run(*request(x))
            np.testing.assert_array_equal(reply["y"], expected(x))

    asyncio.run(main())
    assert recorder.rows == [2] * 20
    assert flushes.causes == {"full": 20}


def test_instances_run_batches_at_the_same_time(recorder: Recorder) -> None:
    batcher, _ = make(recorder, BatchPolicy(), instances=2)
    recorder.gate.clear()

    async def main() -> None:
        calls = [asyncio.ensure_future(batcher.run(*request(np.zeros((1, 2), np.float32)))) for _ in range(3)]
        for _ in range(500):
            if recorder.running == 2:
                break
            await asyncio.sleep(0.001)
        assert recorder.running == 2 and batcher.depth == 1
        recorder.gate.set()
        await asyncio.gather(*calls)

    asyncio.run(main())
    assert recorder.most_at_once == 2
    assert recorder.rows == [1, 1, 1]
