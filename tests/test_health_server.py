"""The consumer's /healthz + /metrics server is bounded: a connection cap, a read deadline, no thread per
connection (it used to open one thread per connection and keep idle ones forever: 500 idle, 504 threads)."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time

import httpx

from worker.mns.health import HEALTH_LIMITS, PollHealth, serve_health

IDLE = 300
SLACK = 2.0


def test_idle_connections_are_capped_and_closed_without_a_thread_each() -> None:
    health = PollHealth(max_silence_seconds=60)
    server = serve_health(health, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        assert httpx.get(f"{base}/healthz", timeout=5).json()["ok"] is True
        assert "python_info" in httpx.get(f"{base}/metrics", timeout=5).text
        threads_before = threading.active_count()
        started = time.monotonic()
        sockets = [socket.create_connection(("127.0.0.1", server.server_port)) for _ in range(IDLE)]
        time.sleep(0.5)
        assert threading.active_count() == threads_before  # no thread per connection
        selector = selectors.DefaultSelector()
        for sock in sockets:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        answers: dict[int, bytes] = {}
        open_left = IDLE
        deadline = started + HEALTH_LIMITS.header_timeout + SLACK
        while open_left and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.1):
                conn = key.fileobj
                assert isinstance(conn, socket.socket)
                data = b""
                with contextlib.suppress(OSError):
                    data = conn.recv(4096)
                if data:
                    answers[conn.fileno()] = answers.get(conn.fileno(), b"") + data
                else:
                    selector.unregister(conn)
                    open_left -= 1
        selector.close()
        for sock in sockets:
            sock.close()
        assert open_left == 0, f"{open_left} idle connections still open"
        refused = [a for a in answers.values() if a.startswith(b"HTTP/1.1 503")]
        timed_out = [a for a in answers.values() if a.startswith(b"HTTP/1.1 408")]
        assert len(refused) >= IDLE - HEALTH_LIMITS.max_connections  # over the cap: refused at once
        assert 0 < len(timed_out) <= HEALTH_LIMITS.max_connections  # within it: closed at the deadline
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        assert httpx.get(f"{base}/nope", timeout=5).status_code == 404
        metrics = httpx.get(f"{base}/metrics", timeout=5).text  # what was dropped, by reason
        assert 'ims_worker_http_connections_dropped_total{reason="refused_over_limit"}' in metrics
        assert 'ims_worker_http_connections_dropped_total{reason="header_timeout"}' in metrics
    finally:
        server.shutdown()


def test_healthz_reports_a_silent_poller() -> None:
    # 1 s, not less: the request after record_poll must arrive within it on a loaded machine.
    health = PollHealth(max_silence_seconds=1.0)
    server = serve_health(health, "127.0.0.1", 0)
    try:
        time.sleep(1.2)
        answer = httpx.get(f"http://127.0.0.1:{server.server_port}/healthz", timeout=5)
        assert answer.status_code == 503 and answer.json()["ok"] is False
        health.record_poll()
        answer = httpx.get(f"http://127.0.0.1:{server.server_port}/healthz", timeout=5)
        assert answer.status_code == 200
    finally:
        server.shutdown()


def test_huge_headers_get_431() -> None:
    """The health server runs the shim's protocol: a 40 MB header is answered 431, not buffered."""
    health = PollHealth(max_silence_seconds=60)
    server = serve_health(health, "127.0.0.1", 0)
    try:
        sock = socket.create_connection(("127.0.0.1", server.server_port))
        sock.settimeout(10)
        with contextlib.suppress(OSError):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Flood: " + b"a" * (40 * 1024 * 1024))
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                answer += chunk
        sock.close()
        assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
        assert HEALTH_LIMITS.max_header_bytes == 32 * 1024
        assert httpx.get(f"http://127.0.0.1:{server.server_port}/healthz", timeout=5).status_code == 200
    finally:
        server.shutdown()
