"""Asynchronous invocations: accept now (202 + call id), run in the background, keep the result, call back.

Like the OpenFaaS queue worker, the result is POSTed to the caller's `X-Callback-Url` with
`X-Call-Id` and `X-Function-Status`; unlike it, the result also stays retrievable by call id (the
newest `max_results` are kept), so a caller without a reachable URL can poll.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from inferlab.errors import InferlabError, InvalidInput, Overloaded
from inferlab.functions.deployment import Invocation
from inferlab.functions.handler import Request

log = logging.getLogger("inferlab.functions")
_CALLBACK_TIMEOUT_S = 10.0


@dataclass(slots=True)
class AsyncResult:
    """One asynchronous call: pending until `invocation` (or `error` with its HTTP status) is set."""

    call_id: str
    function: str
    submitted_at: float = field(default_factory=time.time)
    invocation: Invocation | None = None
    error: str | None = None
    status: int = 202
    callback_url: str | None = None
    callback_status: int | None = None
    callback_error: str | None = None


class AsyncCalls:
    """Runs queued calls through `invoke`; `error_status` maps a failure to the status the caller would see."""

    def __init__(self, invoke: Callable[[str, Request], Awaitable[Invocation]],
                 error_status: Callable[[InferlabError], int], max_pending: int = 1000,
                 max_results: int = 1000) -> None:
        self._invoke = invoke
        self._error_status = error_status
        self._max_pending = max_pending
        self._max_results = max_results
        self._results: OrderedDict[str, AsyncResult] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    def submit(self, function: str, request: Request, callback_url: str | None) -> AsyncResult:
        if callback_url is not None and not callback_url.startswith(("http://", "https://")):
            raise InvalidInput(f"X-Callback-Url {callback_url!r} must be an http:// or https:// URL")
        if len(self._tasks) >= self._max_pending:
            raise Overloaded(f"{self._max_pending} asynchronous calls are already queued; retry later")
        result = AsyncResult(uuid.uuid4().hex, function, callback_url=callback_url)
        self._results[result.call_id] = result
        while len(self._results) > self._max_results:
            self._results.popitem(last=False)
        task = asyncio.get_running_loop().create_task(self._run(result, request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return result

    def get(self, call_id: str) -> AsyncResult | None:
        return self._results.get(call_id)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    async def _run(self, result: AsyncResult, request: Request) -> None:
        try:
            invocation = await self._invoke(result.function, request)
        except InferlabError as exc:
            result.error, result.status = str(exc), self._error_status(exc)
        except Exception as exc:
            log.exception("asynchronous call %s of '%s' failed", result.call_id, result.function)
            result.error, result.status = f"internal error: {type(exc).__name__}: {exc}", 500
        else:
            result.invocation, result.status = invocation, invocation.response.status
        if result.callback_url is not None:
            await self._call_back(result, result.callback_url)

    async def _call_back(self, result: AsyncResult, url: str) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=_CALLBACK_TIMEOUT_S)
        headers = {"X-Call-Id": result.call_id, "X-Function-Name": result.function,
                   "X-Function-Status": str(result.status)}
        if result.invocation is not None:
            response = result.invocation.response
            body, headers["Content-Type"] = response.body, response.content_type
        else:
            body, headers["Content-Type"] = (result.error or "").encode(), "text/plain; charset=utf-8"
        try:
            reply = await self._client.post(url, content=body, headers=headers)
            result.callback_status = reply.status_code
        except httpx.HTTPError as exc:
            result.callback_error = f"{type(exc).__name__}: {exc}"
            log.warning("callback for call %s to %s failed: %s", result.call_id, url, exc)
