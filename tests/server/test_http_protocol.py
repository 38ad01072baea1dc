"""server/http_protocol.py: each response leaves as one TCP segment (counted by the kernel); a large
request body reaches its route whole, in one message, and a V2 binary tensor uncopied and aligned."""

import hashlib
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import orjson
import pytest
import uvicorn

from inferlab.server.http_protocol import InferenceHttpProtocol, http_protocol

# struct tcp_info (linux/tcp.h): tcpi_data_segs_in is the u32 at byte 152 (Linux >= 4.6).
_TCP_INFO_BYTES = 256
_DATA_SEGS_IN = 152


def data_segments_received(sock: socket.socket) -> int:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_BYTES)
    count: int = struct.unpack_from("I", info, _DATA_SEGS_IN)[0]
    return count


def read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length"))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_each_response_is_one_segment(base_url: str) -> None:
    url = urlsplit(base_url)
    body = orjson.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64], "data": [0.5] * 64}]})
    request = (
        b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    assert httpx.get(f"{base_url}/v2/health/ready").status_code == 200
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        before = data_segments_received(sock)
        replies = []
        for _ in range(20):
            sock.sendall(request)
            replies.append(read_response(sock))
        segments = data_segments_received(sock) - before
    assert all(r.startswith(b"HTTP/1.1 200") and b'"probabilities"' in r for r in replies)
    assert all(b"server-timing" in r.lower() for r in replies)
    assert segments == 20  # uvicorn alone sends headers and body as two segments: 40


# --- large bodies: read straight into one buffer ------------------------------------------------------
@contextmanager
def asgi_server(app: Any, max_body_bytes: int = 4 * 1024 * 1024) -> Iterator[tuple[str, int]]:
    """`app` on uvicorn with inferlab's HTTP protocol, on a loopback port, in a thread."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, loop="uvloop", log_level="warning",
                            http=http_protocol(max_body_bytes))  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.01)
    try:
        yield "127.0.0.1", server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)


async def body_report(scope: Any, receive: Any, send: Any) -> None:
    """Replies with what the route saw: how many body messages, their type, length, digest and alignment."""
    if scope["type"] != "http":
        return
    messages, parts = 0, []
    while True:
        message = await receive()
        messages += 1
        parts.append(message["body"])
        if not message.get("more_body"):
            break
    body = parts[0] if len(parts) == 1 else b"".join(parts)
    offset = int(dict(scope["headers"]).get(b"inference-header-content-length", b"0"))
    address = np.frombuffer(body, np.uint8)[offset:].ctypes.data
    reply = orjson.dumps({"messages": messages, "type": type(body).__name__, "length": len(body),
                          "sha": hashlib.sha256(body).hexdigest(), "tensor_aligned": address % 64 == 0})
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(reply))]})
    await send({"type": "http.response.body", "body": reply})


def read_bodies(sock: socket.socket, count: int) -> list[bytes]:
    """The bodies of the next `count` responses (pipelined: they may arrive in one read)."""
    data, bodies = b"", []
    while len(bodies) < count:
        head, found, rest = data.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0]) if found else -1
        if found and len(rest) >= length:
            bodies.append(rest[:length])
            data = rest[length:]
        else:
            data += sock.recv(65536)
    return bodies


def post(sock: socket.socket, body: bytes, pieces: int = 1, headers: bytes = b"") -> dict[str, Any]:
    head = b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n" % (len(body), headers)
    step = -(-len(body) // pieces)
    sock.sendall(head)
    for start in range(0, len(body), step):
        sock.sendall(body[start:start + step])
        time.sleep(0.005)  # each piece arrives on its own
    reply = read_response(sock)
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    return dict(orjson.loads(reply.partition(b"\r\n\r\n")[2]))


def test_a_large_body_reaches_the_route_whole_in_one_message() -> None:
    body = np.random.default_rng(0).integers(0, 256, 600_000, dtype=np.uint8).tobytes()
    with asgi_server(body_report) as address, socket.create_connection(address) as sock:
        seen = post(sock, body, pieces=12)
        small = post(sock, b"x" * 100)  # the next request on the connection is parsed afresh
    # Through uvicorn's own protocol the route gets a message per read: 12 or more for these 12 pieces.
    # The message carries the buffer the body was read into, not a copy of it in `bytes`.
    assert seen["messages"] == 1 and seen["type"] == "memoryview" and seen["length"] == len(body)
    assert seen["sha"] == hashlib.sha256(body).hexdigest()
    assert small["length"] == 100 and small["sha"] == hashlib.sha256(b"x" * 100).hexdigest()


def test_a_large_body_is_read_into_its_buffer_not_through_the_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a read that also carried the head may pass body bytes through the parser (uvloop, given an
    asyncio.Protocol, would call data_received for every read: all 600,000 bytes, 12 calls here)."""
    parsed: list[int] = []
    on_body = InferenceHttpProtocol.on_body

    def counting(self: InferenceHttpProtocol, body: bytes) -> None:
        parsed.append(len(body))
        on_body(self, body)

    monkeypatch.setattr(InferenceHttpProtocol, "on_body", counting)
    body = np.random.default_rng(1).integers(0, 256, 600_000, dtype=np.uint8).tobytes()
    with asgi_server(body_report) as address, socket.create_connection(address) as sock:
        seen = post(sock, body, pieces=12)
    assert seen["sha"] == hashlib.sha256(body).hexdigest() and seen["messages"] == 1
    assert len(parsed) <= 1 and sum(parsed) < 64 * 1024, parsed


def test_a_v2_binary_body_comes_uncopied_with_its_tensor_aligned() -> None:
    header = b'{"inputs": []}'  # 14 bytes: the tensor after it would be misaligned in an ordinary buffer
    body = header + np.arange(100_000, dtype=np.float32).tobytes()
    extra = b"Inference-Header-Content-Length: %d\r\n" % len(header)
    with asgi_server(body_report) as address, socket.create_connection(address) as sock:
        seen = post(sock, body, pieces=4, headers=extra)
        again = post(sock, body, pieces=1, headers=extra)
    for reply in (seen, again):
        assert reply["type"] == "memoryview" and reply["tensor_aligned"] and reply["messages"] == 1
        assert reply["sha"] == hashlib.sha256(body).hexdigest()


def test_pipelined_requests_after_a_large_body_are_all_answered() -> None:
    big = bytes(range(256)) * 1000
    requests = b"".join(
        b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(b), b) for b in (big, b"abc", big)
    )
    with asgi_server(body_report) as address, socket.create_connection(address) as sock:
        sock.sendall(requests)
        replies = [orjson.loads(body) for body in read_bodies(sock, 3)]
    assert [r["length"] for r in replies] == [len(big), 3, len(big)]
    assert replies[0]["sha"] == replies[2]["sha"] == hashlib.sha256(big).hexdigest()


def test_over_the_limit_and_abandoned_bodies_leave_the_server_serving() -> None:
    with asgi_server(body_report, max_body_bytes=100_000) as address:
        with socket.create_connection(address) as sock:  # over the protocol's limit: uvicorn's own path
            assert post(sock, b"y" * 150_000, pieces=3)["length"] == 150_000
        with socket.create_connection(address) as sock:  # the client goes away halfway through a body
            sock.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 90000\r\n\r\n" + b"z" * 40_000)
        with socket.create_connection(address) as sock:
            assert post(sock, b"z" * 90_000, pieces=3)["messages"] == 1


def test_a_binary_tensor_sent_in_pieces_infers_like_one_sent_whole(base_url: str) -> None:
    url = urlsplit(base_url)
    x = np.random.default_rng(1).standard_normal((1, 3, 224, 224)).astype(np.float32)
    header = orjson.dumps({"inputs": [{"name": "input", "shape": [1, 3, 224, 224], "datatype": "FP32",
                                       "parameters": {"binary_data_size": x.nbytes}}]})
    body = header + x.tobytes()
    whole = httpx.post(f"{base_url}/v2/models/mobilenet_v2/infer", content=body, timeout=30,
                       headers={"Inference-Header-Content-Length": str(len(header))})
    assert whole.status_code == 200, whole.text
    expected = whole.json()["outputs"][0]["data"]
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall(b"POST /v2/models/mobilenet_v2/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                     b"Inference-Header-Content-Length: %d\r\n\r\n" % (len(body), len(header)))
        for start in range(0, len(body), 50_000):
            sock.sendall(body[start:start + 50_000])
            time.sleep(0.002)
        reply = read_response(sock)
    assert reply.startswith(b"HTTP/1.1 200")
    assert orjson.loads(reply.partition(b"\r\n\r\n")[2])["outputs"][0]["data"] == expected
