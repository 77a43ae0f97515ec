"""worker/boundedhttp.py, the uvicorn protocol subclass, on a real uvicorn in a thread with small limits:
header and body deadlines, the connection cap, the lingering close after an early answer, keep-alive."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from worker.boundedhttp import CONFIG_ATTRIBUTE, LINGER_SECONDS, PROTOCOL, ConnectionLimits

LIMITS = ConnectionLimits(max_connections=3, header_timeout=0.5, body_timeout=1.0)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/early":  # answers without reading the body, as a 401 or 413 does
        status, body = 401, b'{"error":"unauthorized"}'
    else:
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        status, body = 200, str(size).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def server() -> Iterator[int]:
    sock = socket.create_server(("127.0.0.1", 0))
    config = uvicorn.Config(app, http=PROTOCOL, lifespan="off", log_config=None, timeout_keep_alive=5)
    setattr(config, CONFIG_ATTRIBUTE, LIMITS)
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not instance.started:
        time.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        instance.should_exit = True
        thread.join(5)
        sock.close()


def read_all(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything until the server closes; and when it closed (seconds from now)."""
    started = time.monotonic()
    sock.settimeout(timeout)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data, time.monotonic() - started


def read_response(sock: socket.socket) -> bytes:
    """One response with a Content-Length body, leaving the connection open."""
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")).split(b":")[
            1
        ]
    )
    while len(body) < length:
        body += sock.recv(4096)
    return head + b"\r\n\r\n" + body


def post(path: str, length: int, extra: str = "") -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {length}\r\n{extra}\r\n".encode()


def test_a_stalled_request_line_gets_408_and_is_closed_at_the_header_deadline(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\n")
        data, elapsed = read_all(sock, 5)
    assert data.startswith(b"HTTP/1.1 408") and b"request_timeout" in data
    assert LIMITS.header_timeout - 0.1 < elapsed < LIMITS.header_timeout + 1


def test_a_second_request_that_stalls_in_its_headers_gets_408_at_the_header_deadline(server: int) -> None:
    # The deadline of a request that arrives in pieces starts with its first byte, on a kept-alive connection
    # too (its timer is set once the read that began it ends; a whole request in one read needs none).
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(post("/echo", 3) + b"abc")
        assert read_response(sock).endswith(b"\r\n\r\n3")
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\n")
        data, elapsed = read_all(sock, 5)
    assert data.startswith(b"HTTP/1.1 408") and b"request_timeout" in data
    assert LIMITS.header_timeout - 0.1 < elapsed < LIMITS.header_timeout + 1


def test_a_silent_connection_is_closed_at_the_header_deadline(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as sock:
        _, elapsed = read_all(sock, 5)
    assert elapsed < LIMITS.header_timeout + 1


def test_a_dripping_body_is_cut_at_the_body_deadline(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(post("/echo", 100) + b"x" * 10)
        data, elapsed = read_all(sock, 5)
    assert data.startswith(b"HTTP/1.1 408")
    assert elapsed < LIMITS.body_timeout + 1


def test_an_early_answer_is_read_by_the_client_not_reset(server: int) -> None:
    body = b"x" * (4 * 1024 * 1024)
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(post("/early", len(body)))

        def send_body() -> None:
            with contextlib.suppress(OSError):  # the server may close before the last byte: that is allowed
                sock.sendall(body)

        sender = threading.Thread(target=send_body, daemon=True)
        sender.start()
        data, elapsed = read_all(sock, 5)
        sender.join(5)
    assert data.startswith(b"HTTP/1.1 401") and data.endswith(b'{"error":"unauthorized"}')
    # Announced, so that a client does not send its next request into the closing connection.
    assert b"\r\nconnection: close\r\n" in data.partition(b"\r\n\r\n")[0] + b"\r\n"
    assert elapsed < LINGER_SECONDS + 1


def test_a_client_that_reuses_connections_never_meets_the_closing_one(server: int) -> None:
    """httpx's pool, as the fuzzing scenario drives the shim: an early answer, then the next request."""
    body = b"x" * (256 * 1024)
    with httpx.Client(base_url=f"http://127.0.0.1:{server}", timeout=5) as client:
        for _ in range(50):
            early = client.post("/early", content=body)
            assert (early.status_code, early.headers["connection"]) == (401, "close")
            assert client.post("/echo", content=b"abc").text == "3"


def test_connection_close_and_keep_alive_are_honoured(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as sock:
        sock.sendall(post("/echo", 3) + b"abc")
        kept = read_response(sock)
        assert kept.endswith(b"\r\n\r\n3") and b"connection:" not in kept.lower()
        time.sleep(
            LIMITS.header_timeout + 0.3
        )  # idle between requests: keep-alive's timeout, not the header's
        sock.sendall(post("/echo", 2, "Connection: close\r\n") + b"ab")
        data, _ = read_all(sock, 5)
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"\r\n\r\n2")
    assert b"\r\nconnection: close\r\n" in data


def test_connections_over_the_cap_are_refused(server: int) -> None:
    held = [socket.create_connection(("127.0.0.1", server)) for _ in range(LIMITS.max_connections)]
    try:
        time.sleep(0.1)
        with socket.create_connection(("127.0.0.1", server)) as extra:
            data, elapsed = read_all(extra, 5)
        assert data.startswith(b"HTTP/1.1 503") and b"retry-after: 5" in data
        assert elapsed < 0.5
    finally:
        for sock in held:
            sock.close()
