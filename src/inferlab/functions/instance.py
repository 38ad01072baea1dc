"""One function instance seen from the server: its worker process, the invocations and model calls in flight.

The instance is the isolation boundary. A handler that raises costs one 500; a worker that dies or
outlives `timeout_s` is killed, its callers get 500/504, and the deployment replaces it. Model calls
the worker sends back run through `ModelService.infer` in the server process, so they share the
model's scheduler (and batcher) with direct inference calls.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import multiprocessing.context
import pickle
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any, Protocol

from inferlab import errors
from inferlab.errors import DeadlineExceeded, InferlabError, InvalidInput, RuntimeFailure
from inferlab.functions import worker
from inferlab.functions.channel import FrameReader, encode_frame, socket_pair
from inferlab.functions.handler import Request, Response
from inferlab.functions.spec import FunctionSpec
from inferlab.messages import InferRequest, InferResponse

log = logging.getLogger("inferlab.functions")
_STOP_GRACE_S = 5.0


class ModelService(Protocol):
    """The part of InferenceService a function needs; the server passes itself in."""

    def infer(self, request: InferRequest) -> Awaitable[InferResponse]: ...


class FunctionError(RuntimeFailure):
    """The handler raised; the message carries its exception."""


class InstanceFailed(RuntimeFailure):
    """The worker process failed to start, or exited while requests were in flight."""


class FunctionTimeout(DeadlineExceeded):
    """The handler did not answer within the function's timeout_s; its instance was killed."""


@dataclass(slots=True)
class WorkerResult:
    """One invocation's reply and where its time went (seconds)."""

    response: Response
    handler_s: float
    model_s: float
    marks: dict[str, float]


@dataclass(slots=True)
class _Call:
    future: asyncio.Future[WorkerResult]
    model_s: float = 0.0
    timer: asyncio.TimerHandle | None = None


@dataclass(slots=True)
class Instance:
    """A worker process serving one function; `inflight` is what the dispatcher balances on."""

    id: str
    spec: FunctionSpec
    folder: Path
    models: ModelService
    processes: multiprocessing.context.BaseContext
    on_log: Callable[[str, str], None]
    on_exit: Callable[[Instance], None]
    state: str = "starting"
    started_at: float = field(default_factory=perf_counter)
    ready_at: float = 0.0
    inflight: int = 0
    _process: Any = None
    _transport: asyncio.Transport | None = None
    _ready: asyncio.Future[str | None] | None = None  # set by "ready" (None) or "failed" (its message)
    _calls: dict[int, _Call] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self, check_only: bool = False) -> None:
        """Start the worker and wait (at most start_timeout_s) for its handler to load and set up."""
        parent, child = socket_pair()
        self._process = self.processes.Process(  # type: ignore[attr-defined]  # contexts carry Process
            target=worker.main, args=(child, str(self.folder), self.spec, check_only),
            name=f"inferlab-fn-{self.id}", daemon=True,
        )
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self._process.start)
        finally:
            child.close()
        self._ready = loop.create_future()
        self._transport, _ = await loop.create_unix_connection(
            lambda: FrameReader(self._on_message, self._on_closed), sock=parent)
        try:
            await asyncio.wait_for(self._handshake(check_only), self.spec.start_timeout_s)
        except BaseException as exc:
            self.kill()
            self._transport.close()
            self.state = "dead"
            if isinstance(exc, TimeoutError):
                raise InstanceFailed(
                    f"function '{self.spec.name}' did not finish setup() within start_timeout_s="
                    f"{self.spec.start_timeout_s:g}"
                ) from None
            raise
        if check_only:
            self._transport.close()
            self.state = "dead"
            await self._exit_code()
            return
        self.state = "ready"
        self.ready_at = perf_counter()

    async def invoke(self, request: Request) -> WorkerResult:
        """Run one request on this instance; the caller has already counted it in `inflight`."""
        if self.state != "ready" or self._transport is None:
            raise InstanceFailed(f"instance {self.id} of function '{self.spec.name}' is {self.state}")
        inv_id = next(self._ids)
        loop = asyncio.get_running_loop()
        call = _Call(loop.create_future())
        call.timer = loop.call_later(self.spec.timeout_s, self._expire, inv_id)
        self._calls[inv_id] = call
        body = pickle.PickleBuffer(request.body)  # sent out of band: see channel.py
        self._transport.writelines(encode_frame(("invoke", inv_id, dataclasses.replace(request, body=b""), body)))
        try:
            return await call.future
        finally:
            call.timer.cancel()
            self._calls.pop(inv_id, None)

    def stop(self) -> None:
        """Ask an idle worker to exit; kill it if it has not gone within a few seconds."""
        if self.state in ("stopping", "dead"):
            return
        self.state = "stopping"
        if self._transport is not None:
            self._transport.writelines(encode_frame(("stop",)))
        asyncio.get_running_loop().call_later(_STOP_GRACE_S, self.kill)

    def kill(self) -> None:
        """SIGKILL the worker; the reader then sees the socket close and runs the exit path."""
        if self._process is not None and self._process.pid is not None and self._process.is_alive():
            self._process.kill()

    def close(self) -> None:
        """Synchronous teardown for server shutdown, when the event loop may already be gone."""
        self.state = "dead"
        if self._process is not None and self._process.pid is not None:
            self._process.kill()
            self._process.join(2)

    # --- inside ----------------------------------------------------------------------------------
    async def _handshake(self, check_only: bool) -> None:
        assert self._ready is not None
        try:
            failure = await self._ready
        except ConnectionError:
            code = await self._exit_code()
            raise InstanceFailed(f"function '{self.spec.name}' exited with code {code} while starting") from None
        if failure is not None:
            raise (InvalidInput(failure) if check_only else
                   InstanceFailed(f"function '{self.spec.name}' failed to start: {failure}"))

    def _on_message(self, message: tuple[Any, ...]) -> None:
        """Act on one frame from the worker (called from the event loop's read callback)."""
        kind = message[0]
        if kind == "result":
            call = self._calls.get(message[1])
            if call is not None and not call.future.done():
                response = message[2]
                response.body = bytes(message[3])
                call.future.set_result(WorkerResult(response, message[4], call.model_s, message[5]))
        elif kind == "error":
            call = self._calls.get(message[1])
            if call is not None and not call.future.done():
                call.future.set_exception(self._error(message[2], message[3]))
        elif kind == "infer":
            self._spawn(self._model_call(*message[1:]))
        elif kind == "log":
            self.on_log(self.id, message[1])
        elif kind in ("ready", "failed") and self._ready is not None and not self._ready.done():
            self._ready.set_result(None if kind == "ready" else message[1])

    def _on_closed(self) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(ConnectionError("the worker closed its channel while starting"))
        elif self.state not in ("dead", "starting"):
            self._spawn(self._exited())

    async def _model_call(self, inv_id: int | None, call_id: int, model: str, version: str | None,
                          inputs: dict[str, Any], outputs: list[str] | None) -> None:
        start = perf_counter()
        reply: tuple[Any, ...]
        if model not in self.spec.models:
            reply = ("model_error", call_id, "InvalidInput",
                     f"function '{self.spec.name}' called model '{model}', which function.yaml does not list; "
                     f"add it under 'models:' (listed: {list(self.spec.models)})")
        else:
            try:
                response = await self.models.infer(InferRequest(model, version, inputs, outputs))
                reply = ("model_ok", call_id, response.outputs)
            except InferlabError as exc:
                reply = ("model_error", call_id, type(exc).__name__, str(exc))
            except Exception as exc:
                log.exception("model call from function '%s' failed", self.spec.name)
                reply = ("model_error", call_id, "RuntimeFailure", f"{type(exc).__name__}: {exc}")
        call = self._calls.get(inv_id) if inv_id is not None else None
        if call is not None:
            call.model_s += perf_counter() - start
        if self._transport is not None and self.state != "dead":
            self._transport.writelines(encode_frame(reply))

    def _error(self, class_name: str, message: str) -> InferlabError:
        if class_name == worker.HANDLER_ERROR:
            return FunctionError(f"function '{self.spec.name}' raised {message}")
        known = errors.error_class(class_name)
        if known is not None:
            return known(message)
        return FunctionError(f"function '{self.spec.name}' raised {class_name}: {message}")

    def _expire(self, inv_id: int) -> None:
        call = self._calls.get(inv_id)
        if call is None or call.future.done():
            return
        call.future.set_exception(FunctionTimeout(
            f"function '{self.spec.name}' did not answer within timeout_s={self.spec.timeout_s:g}; "
            f"its instance {self.id} was killed and is being replaced"
        ))
        self.on_log(self.id, f"killed: a request ran past timeout_s={self.spec.timeout_s:g}")
        self.kill()

    async def _exited(self) -> None:
        was = self.state
        self.state = "dead"
        if self._transport is not None:
            self._transport.close()
        code = await self._exit_code()
        pending = [c for c in self._calls.values() if not c.future.done()]
        for call in pending:
            call.future.set_exception(InstanceFailed(
                f"the instance of function '{self.spec.name}' exited (code {code}) while handling the "
                "request; it is being replaced"
            ))
        if was != "stopping" or pending:
            self.on_log(self.id, f"instance exited unexpectedly (code {code})")
        self.on_exit(self)

    async def _exit_code(self) -> int | None:
        process = self._process
        if process is None or process.pid is None:
            return None
        await asyncio.get_running_loop().run_in_executor(None, process.join, 2.0)
        code: int | None = process.exitcode
        return code

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
