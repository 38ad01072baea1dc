"""A tiny ASGI server with a known service time: `workers` requests at a time, each sleeping `service_s`.

Its capacity is exactly workers / service_s requests per second, which the server scenario must find.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import uvicorn

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def sleep_app(workers: int, service_s: float) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    slots: asyncio.Semaphore | None = None

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal slots
        if scope["type"] != "http":
            return
        if slots is None:
            slots = asyncio.Semaphore(workers)
        while (await receive()).get("more_body"):
            pass
        async with slots:
            await asyncio.sleep(service_s)
        timing = f"queue;dur=0, infer;dur={service_s * 1000:.3f}, total;dur={service_s * 1000:.3f}"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"server-timing", timing.encode())]})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


@contextmanager
def serve_sleep(workers: int, service_s: float) -> Iterator[str]:
    """Run the app on a free loopback port in a thread; yields its base URL."""
    config = uvicorn.Config(sleep_app(workers, service_s), host="127.0.0.1", port=0, log_level="warning",
                            lifespan="off", loop="asyncio")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("sleep server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
