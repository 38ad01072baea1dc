"""Asynchronous invocations: accept now (202 + call id), run in the background, keep the result, call back.

Like the OpenFaaS queue worker, the result is POSTed to the caller's `X-Callback-Url` with
`X-Call-Id` and `X-Function-Status`; unlike it, the result also stays retrievable by call id. Calls
are recorded as files in a folder the server's worker processes share (`CALL_ID`: a JSON header,
then the response body), so a result can be fetched through any worker, not only the one that ran
the call; the newest `max_results` are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import struct
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from inferlab.errors import InferlabError, InvalidInput, Overloaded
from inferlab.functions.deployment import Invocation
from inferlab.functions.handler import Request, Response
from inferlab.repository.store import write_atomic

log = logging.getLogger("inferlab.functions")
_CALLBACK_TIMEOUT_S = 10.0
_CALL_ID = re.compile(r"[0-9a-f]{32}")
_HEADER = struct.Struct(">I")  # length of the JSON header that precedes the body
_PRUNE_EVERY = 64


@dataclass(slots=True)
class AsyncResult:
    """One asynchronous call: pending until `invocation` (or `error` with its HTTP status) is set."""

    call_id: str
    function: str
    submitted_at: float = field(default_factory=time.time)
    invocation: Invocation | None = None
    error: str | None = None
    status: int = 202


class AsyncCalls:
    """Runs queued calls through `invoke`; `error_status` maps a failure to the status the caller would see."""

    def __init__(self, invoke: Callable[[str, Request], Awaitable[Invocation]],
                 error_status: Callable[[InferlabError], int], folder: Path, max_pending: int = 1000,
                 max_results: int = 1000) -> None:
        self._invoke = invoke
        self._error_status = error_status
        self._folder = folder
        self._max_pending = max_pending
        self._max_results = max_results
        self._saved = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    async def submit(self, function: str, request: Request, callback_url: str | None) -> AsyncResult:
        """Record the call as pending (visible to every worker), then run it in the background."""
        if callback_url is not None and not callback_url.startswith(("http://", "https://")):
            raise InvalidInput(f"X-Callback-Url {callback_url!r} must be an http:// or https:// URL")
        if len(self._tasks) >= self._max_pending:
            raise Overloaded(f"{self._max_pending} asynchronous calls are already queued; retry later")
        result = AsyncResult(uuid.uuid4().hex, function)
        await asyncio.to_thread(self._save, result)
        task = asyncio.get_running_loop().create_task(self._run(result, request, callback_url))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return result

    async def get(self, call_id: str) -> AsyncResult | None:
        """The call as last recorded by whichever worker runs it; None when unknown or no longer kept."""
        if not _CALL_ID.fullmatch(call_id):
            return None
        return await asyncio.to_thread(self._load, call_id)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    async def _run(self, result: AsyncResult, request: Request, callback_url: str | None) -> None:
        try:
            invocation = await self._invoke(result.function, request)
        except InferlabError as exc:
            result.error, result.status = str(exc), self._error_status(exc)
        except Exception as exc:
            log.exception("asynchronous call %s of '%s' failed", result.call_id, result.function)
            result.error, result.status = f"internal error: {type(exc).__name__}: {exc}", 500
        else:
            result.invocation, result.status = invocation, invocation.response.status
        await asyncio.to_thread(self._save, result)  # before the callback, so its receiver can fetch it
        if callback_url is not None:
            await self._call_back(result, callback_url)

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
            await self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("callback for call %s to %s failed: %s", result.call_id, url, exc)

    # --- the shared folder -----------------------------------------------------------------------
    def _save(self, result: AsyncResult) -> None:
        header: dict[str, Any] = {"function": result.function, "submitted_at": result.submitted_at,
                                  "status": result.status, "error": result.error, "invocation": None}
        body = b""
        if (inv := result.invocation) is not None:
            body = inv.response.body
            header["invocation"] = {
                "instance": inv.instance, "queue_s": inv.queue_s, "cold_start_s": inv.cold_start_s,
                "handler_s": inv.handler_s, "model_s": inv.model_s, "marks": inv.marks,
                "status": inv.response.status, "content_type": inv.response.content_type,
                "headers": inv.response.headers,
            }
        encoded = orjson.dumps(header)
        self._folder.mkdir(parents=True, exist_ok=True)  # on first use, so an unused server leaves no folder
        write_atomic(self._folder / result.call_id, _HEADER.pack(len(encoded)) + encoded + body, durable=False)
        if result.status != 202:
            self._saved += 1
            if self._saved % _PRUNE_EVERY == 0:
                self._prune()

    def _load(self, call_id: str) -> AsyncResult | None:
        try:
            data = (self._folder / call_id).read_bytes()
        except FileNotFoundError:
            return None
        (size,) = _HEADER.unpack_from(data)
        header = orjson.loads(data[_HEADER.size:_HEADER.size + size])
        result = AsyncResult(call_id, header["function"], header["submitted_at"], error=header["error"],
                             status=header["status"])
        if (inv := header["invocation"]) is not None:
            response = Response(data[_HEADER.size + size:], inv["content_type"], inv["status"], inv["headers"])
            result.invocation = Invocation(response, inv["instance"], inv["queue_s"], inv["cold_start_s"],
                                           inv["handler_s"], inv["model_s"], inv["marks"])
        return result

    def _prune(self) -> None:
        """Delete all but the newest `max_results` records (every worker prunes the shared folder)."""
        records = []
        for entry in os.scandir(self._folder):
            if _CALL_ID.fullmatch(entry.name):
                with contextlib.suppress(FileNotFoundError):
                    records.append((entry.stat().st_mtime_ns, entry.path))
        records.sort()
        for _, path in records[: max(0, len(records) - self._max_results)]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
