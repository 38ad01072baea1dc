"""The worker process of one function instance: load the handler, run setup(), serve invocations.

The main thread reads frames; each invocation runs on a pool thread (up to the function's
`concurrency`), so a handler blocked on a model call leaves room for the next request. Model calls
go back to the server over the same socket and wait for its answer. stdout/stderr become log frames
so `inferlab fn logs` shows prints and tracebacks.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import os
import pickle
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from time import perf_counter
from typing import Any

from inferlab import errors
from inferlab.errors import InferlabError, InvalidInput
from inferlab.functions.channel import BlockingChannel
from inferlab.functions.handler import Handler, Request, as_response
from inferlab.functions.loader import load_handler
from inferlab.functions.spec import FunctionSpec
from inferlab.tensors import Array

HANDLER_ERROR = "HandlerError"


def main(sock: socket.socket, folder: str, spec: FunctionSpec, check_only: bool = False) -> None:
    """Process entry point; `check_only` imports and checks the handler, then exits (used at deploy)."""
    channel = BlockingChannel(sock)
    os.chdir(folder)
    os.environ.update(spec.environment)
    sys.stdout = _LogStream(channel)
    sys.stderr = _LogStream(channel)
    context = WorkerContext(channel, Path(folder), spec)
    try:
        handler_class = load_handler(Path(folder) / spec.handler)
        if check_only:
            channel.send(("ready",))
            return
        handler = handler_class(context)
        handler.setup()
    except InvalidInput as exc:
        channel.send(("failed", str(exc)))
        return
    except Exception as exc:
        traceback.print_exc()
        channel.send(("failed", f"setup() raised {type(exc).__name__}: {exc}"))
        return
    channel.send(("ready",))
    _Worker(channel, handler, context, spec.concurrency).serve()


class WorkerContext:
    """The handler's Context: its folder, environment, server models (over the channel) and timings."""

    def __init__(self, channel: BlockingChannel, path: Path, spec: FunctionSpec) -> None:
        self._channel = channel
        self._path = path
        self._spec = spec
        self._call_ids = itertools.count()
        self._pending: dict[int, Future[dict[str, Array]]] = {}
        self.local = threading.local()
        self.pump: Callable[[], None] | None = None  # set when the handler runs on the reading thread

    @property
    def path(self) -> Path:
        return self._path

    @property
    def environment(self) -> dict[str, str]:
        return dict(self._spec.environment)

    def infer(self, model: str, inputs: dict[str, Array], outputs: list[str] | None = None,
              version: str | None = None) -> dict[str, Array]:
        call_id = next(self._call_ids)
        future: Future[dict[str, Array]] = Future()
        self._pending[call_id] = future
        self._channel.send(("infer", getattr(self.local, "inv_id", None), call_id, model, version, inputs, outputs))
        while self.pump is not None and not future.done():
            self.pump()
        return future.result()

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        start = perf_counter()
        try:
            yield
        finally:
            marks: dict[str, float] | None = getattr(self.local, "marks", None)
            if marks is not None:
                marks[name] = marks.get(name, 0.0) + perf_counter() - start

    def resolve(self, message: tuple[Any, ...]) -> None:
        """Complete the model call a `model_ok` / `model_error` frame answers."""
        future = self._pending.pop(message[1])
        if message[0] == "model_ok":
            future.set_result(message[2])
        else:
            future.set_exception((errors.error_class(message[2]) or errors.RuntimeFailure)(message[3]))


class _Worker:
    """The frame loop. With concurrency 1 the handler runs on this thread and pumps its own model
    replies (no thread hand-offs on the hot path); above 1, invocations go to a thread pool."""

    def __init__(self, channel: BlockingChannel, handler: Handler, context: WorkerContext, concurrency: int) -> None:
        self._channel = channel
        self._handler = handler
        self._context = context
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="handler") if concurrency > 1 else None
        self._stopping = False
        if self._pool is None:
            context.pump = self.pump

    def serve(self) -> None:
        try:
            while not self._stopping:
                self.pump()
        except EOFError:
            return
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def pump(self) -> None:
        """Read and act on one frame."""
        message = self._channel.receive()
        kind = message[0]
        if kind == "invoke":
            request: Request = message[2]
            request.body = message[3]
            if self._pool is None:
                _invoke(self._channel, self._handler, self._context, message[1], request)
            else:
                self._pool.submit(_invoke, self._channel, self._handler, self._context, message[1], request)
        elif kind in ("model_ok", "model_error"):
            self._context.resolve(message)
        elif kind == "stop":
            self._stopping = True


def _invoke(channel: BlockingChannel, handler: Handler, context: WorkerContext, inv_id: int, request: Request) -> None:
    marks: dict[str, float] = {}
    context.local.inv_id = inv_id
    context.local.marks = marks
    start = perf_counter()
    try:
        response = as_response(handler.handle(request))
    except InferlabError as exc:
        channel.send(("error", inv_id, type(exc).__name__, str(exc)))
    except Exception as exc:
        traceback.print_exc()
        channel.send(("error", inv_id, HANDLER_ERROR, f"{type(exc).__name__}: {exc}"))
    else:
        body = pickle.PickleBuffer(response.body)  # sent out of band: see channel.py
        channel.send(("result", inv_id, dataclasses.replace(response, body=b""), body, perf_counter() - start, marks))
    finally:
        context.local.inv_id = None
        context.local.marks = None


class _LogStream(io.TextIOBase):
    """A text stream that sends each complete line to the server as a log frame."""

    def __init__(self, channel: BlockingChannel) -> None:
        self._channel = channel
        self._buffer = ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self._buffer += text
            *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            self._channel.send(("log", line))
        return len(text)

    def flush(self) -> None:
        with self._lock:
            line, self._buffer = self._buffer, ""
        if line:
            self._channel.send(("log", line))
