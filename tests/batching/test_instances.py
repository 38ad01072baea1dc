"""InstancePool's instance threads: a finished batch's tensors are not kept alive by the thread that ran it."""

from __future__ import annotations

import asyncio
import gc
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
