"""InstancePool's instance threads: a finished batch's tensors are not kept alive by the thread that ran it;
two threads take turns on the GIL sooner."""

from __future__ import annotations

import asyncio
import gc
import sys
import weakref

import numpy as np

from inferlab.batching.instances import InstancePool, Outputs
from inferlab.errors import InferlabError
from tests.batching.conftest import Recorder, RecordingRuntime


def test_the_instance_thread_lets_go_of_a_finished_batch(recorder: Recorder) -> None:
    pool = InstancePool("rec", [RecordingRuntime(recorder)])
    x = np.ones((4, 3), np.float32)  # a request body, in the server: it may be a large buffer
    gone = weakref.ref(x)

    async def one_batch(inputs: dict[str, np.ndarray]) -> Outputs | InferlabError:
        finished: asyncio.Future[Outputs | InferlabError] = asyncio.get_running_loop().create_future()
        pool.submit(inputs, None, lambda result, start, end: finished.set_result(result))
        return await finished

    result = asyncio.run(one_batch({"x": x}))
    assert not isinstance(result, InferlabError)
    np.testing.assert_array_equal(result["y"], x * 2 + 1)
    del x, result
    gc.collect()
    # The thread now waits for its next batch; before, its loop variables still held this one's inputs.
    assert gone() is None
    pool.close()


def test_a_second_instance_thread_shortens_the_gil_switch_interval(recorder: Recorder) -> None:
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    try:
        pool = InstancePool("rec", [RecordingRuntime(recorder), RecordingRuntime(recorder)])

        async def batches(n: int) -> None:
            loop = asyncio.get_running_loop()
            waits = [loop.create_future() for _ in range(n)]
            for finished in waits:  # submitted together: each takes its own free instance, on its own thread
                pool.submit({"x": np.ones((1, 3), np.float32)}, None,
                            lambda result, start, end, f=finished: f.set_result(result))
            await asyncio.gather(*waits)

        asyncio.run(batches(1))
        assert sys.getswitchinterval() == 0.005  # one instance thread: the GIL's default turns
        asyncio.run(batches(2))
        assert sys.getswitchinterval() == 0.0005
        pool.close()
    finally:
        sys.setswitchinterval(before)
