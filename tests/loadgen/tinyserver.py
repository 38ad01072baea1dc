"""A tiny real HTTP/1.1 server whose behaviour each path chooses; run as a script, it prints its port.

Paths: `/` ok with Server-Timing; `/sleep?ms=N`; `/never` (no answer); `/status?code=N`; `/chunked`;
`/close` (Connection: close). Control: `/_stall?after=S&for=S` holds every answer due in that window until
it ends (like a process paused with ^Z); `/_count` returns how many requests were served.
It runs in its own process so it never competes with the generator for the GIL.
"""

from __future__ import annotations

import asyncio
import sys
import time
from urllib.parse import parse_qs, urlsplit

SERVER_TIMING = "decode;dur=0.1, queue;dur=0.2, infer;desc=\"onnx\";dur=0.3, encode;dur=0.05, total;dur=0.7"


class Behaviour:
    def __init__(self) -> None:
        self.requests = 0
        self.stall_from = self.stall_to = 0.0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                length = next((int(line.split(":", 1)[1]) for line in lines
                               if line.lower().startswith("content-length:")), 0)
                if length:
                    await reader.readexactly(length)
                target = urlsplit(lines[0].split(" ")[1])
                if not await self.answer(target.path, parse_qs(target.query), writer):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def answer(self, path: str, query: dict[str, list[str]], writer: asyncio.StreamWriter) -> bool:
        now = time.perf_counter()
        body = b"ok"
        if path == "/_stall":
            self.stall_from = now + float(query["after"][0])
            self.stall_to = self.stall_from + float(query["for"][0])
        elif path == "/_count":
            body = str(self.requests).encode()
        else:
            self.requests += 1
        if self.stall_from <= now < self.stall_to:
            await asyncio.sleep(self.stall_to - now)
        if path == "/never":
            await asyncio.sleep(3600)
        if path == "/sleep":
            await asyncio.sleep(float(query["ms"][0]) / 1000)
        if path == "/chunked":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
            return True
        status = int(query.get("code", ["200"])[0]) if path == "/status" else 200
        close = path == "/close"
        extra = "Connection: close\r\n" if close else ""
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\nServer-Timing: {SERVER_TIMING}\r\n"
                     f"{extra}\r\n".encode() + body)
        await writer.drain()
        return not close


async def main() -> None:
    server = await asyncio.start_server(Behaviour().serve, "127.0.0.1", 0)
    sys.stdout.write(f"{server.sockets[0].getsockname()[1]}\n")
    sys.stdout.flush()
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
