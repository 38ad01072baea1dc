"""Each HTTP response leaves the server as one TCP segment (server/http_protocol.py), counted by the kernel."""

import socket
import struct
from urllib.parse import urlsplit

import httpx
import orjson

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
