"""The shim's memory and connection bounds, against the real ``ims-worker shim`` process and a real Redis.

- 400 concurrent 1 MiB uploads to the Tencent endpoint (whose signature is inside the body, so the body must
  be read before anything is authenticated) keep the process's RSS within ``RSS_GROWTH_LIMIT`` of its idle
  size: the in-flight body budget (8 MiB by default) answers the excess 503 + Retry-After.
- 1,000 connections that send a request line and stop are all closed within the header timeout (5 s by
  default) plus ``SLACK``; while they are open, one connection more is refused 503 (the cap is 1,000).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.conftest import SAMPLES_DIR, SPOOL_DIR_VAR
from tests.servers import RedisServer, free_port, wait_for_port
from worker.settings import Settings
from worker.shim import ENDPOINTS, sign_request

pytestmark = pytest.mark.integration

IMS_WORKER = str(Path(sys.executable).with_name("ims-worker"))
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULTS = Settings(_env_file=None)
KEY = "tencent-limits-test-key-0123456789"
MIB = 1024 * 1024
UPLOADS = 400
STALLED = 1000
# The budget holds 8 MiB of raw bodies; parsing and publishing an admitted 1 MiB body costs a few times its
# size while it is processed. Measured peak growth: about 60 MiB (without the bounds: over 300 MiB).
RSS_GROWTH_LIMIT = 96 * MIB
SLACK = 2.0


@pytest.fixture(scope="module")
def shim(redis_server: RedisServer) -> Iterator[tuple[str, int, psutil.Process]]:
    if redis_server.process is None:
        redis_server.start()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMS_WORKER_", "PROMETHEUS_MULTIPROC"))}
    env[SPOOL_DIR_VAR] = os.environ[SPOOL_DIR_VAR]  # the test's own (tests/conftest.py)
    env.update(
        IMS_WORKER_BROKER_URL=redis_server.url,
        IMS_WORKER_TENCENT_CALLBACK_KEY=KEY,
        IMS_WORKER_SHIM_PUBLIC_URL=f"http://127.0.0.1:{port}",
        # 1 MiB bodies must be admissible for the budget (not the per-request limit) to be what is tested.
        IMS_WORKER_SHIM_MAX_BODY_BYTES=str(MIB + 64 * 1024),
        IMS_WORKER_LOG_FORMAT="json",
        IMS_WORKER_SHIM_ACCESS_LOG="false",
    )
    args = [IMS_WORKER, "shim", "--port", str(port)]
    process = subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, timeout=30)
        yield "127.0.0.1", port, psutil.Process(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    text = output.decode(errors="replace")
    assert KEY not in text
    for line in text.splitlines():  # uvicorn's own lines too: every line is JSON
        assert isinstance(json.loads(line), dict), line


def upload_body(size: int) -> bytes:
    sample = json.loads((SAMPLES_DIR / "tencent-css" / "TaskStart.json").read_text())
    sample["padding"] = ""
    base = len(json.dumps(sample).encode()) + 64  # room for t and sign
    sample["padding"] = "x" * (size - base)
    _, _, signed = sign_request("tencent", json.dumps(sample).encode(), key=KEY)
    return signed


async def one_upload(host: str, port: int, request: bytes) -> tuple[str, bytes]:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        return f"connect:{type(exc).__name__}", b""
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=30)
    except (ConnectionError, OSError):
        return "reset", b""
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/1.1 ") else "empty"
    return status, answer


async def all_uploads(host: str, port: int, request: bytes) -> list[tuple[str, bytes]]:
    return await asyncio.gather(*(one_upload(host, port, request) for _ in range(UPLOADS)))


def peak_rss(process: psutil.Process, stop: threading.Event, peaks: list[int]) -> None:
    while not stop.is_set():
        peaks.append(process.memory_info().rss)
        time.sleep(0.01)


def test_concurrent_large_uploads_stay_within_the_memory_bound(
    shim: tuple[str, int, psutil.Process],
) -> None:
    host, port, process = shim
    body = upload_body(MIB)
    head = (
        f"POST {ENDPOINTS['tencent']} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    request = head + body
    status, answer = asyncio.run(one_upload(host, port, request))  # warm: imports, Redis connection
    assert status == "200", answer[:300]
    idle = process.memory_info().rss
    stop, peaks = threading.Event(), [idle]
    sampler = threading.Thread(target=peak_rss, args=(process, stop, peaks), daemon=True)
    sampler.start()
    try:
        results = asyncio.run(all_uploads(host, port, request))
    finally:
        stop.set()
        sampler.join()
    statuses = Counter(status for status, _ in results)
    growth = max(peaks) - idle
    print(f"statuses {dict(statuses)}; RSS idle {idle / MIB:.0f} MiB, peak growth {growth / MIB:.0f} MiB")
    assert set(statuses) <= {"200", "503", "reset"}, statuses
    # The budget admits at least as many bodies as fit in it at once...
    assert statuses["200"] >= DEFAULTS.shim_max_inflight_body_bytes // len(request)
    assert statuses["503"] + statuses["reset"] >= UPLOADS // 2  # ...and refuses the excess
    refused = next(answer for status, answer in results if status == "503")
    head_text, _, payload = refused.partition(b"\r\n\r\n")
    assert b"retry-after: 5" in head_text.lower()
    assert json.loads(payload)["error"] == "overloaded"
    assert growth < RSS_GROWTH_LIMIT, f"RSS grew {growth / MIB:.0f} MiB"
    status, _ = asyncio.run(one_upload(host, port, request))  # the budget was given back
    assert status == "200"


def test_stalled_connections_are_closed_within_the_header_timeout_and_capped(
    shim: tuple[str, int, psutil.Process],
) -> None:
    host, port, _ = shim
    assert DEFAULTS.shim_max_connections == STALLED  # the test runs at the default cap and timeout
    timeout = DEFAULTS.shim_header_timeout_seconds
    sockets = []
    started = time.monotonic()
    for _ in range(STALLED):
        sock = socket.create_connection((host, port))
        sock.sendall(f"POST {ENDPOINTS['tencent']} HTTP/1.1\r\n".encode())
        sockets.append(sock)
    time.sleep(0.5)  # let the server accept them all
    extra = socket.create_connection((host, port))
    extra.settimeout(5)
    refused = b""
    with contextlib.suppress(OSError):
        while chunk := extra.recv(4096):
            refused += chunk
    extra.close()
    assert refused.startswith(b"HTTP/1.1 503"), refused[:200]
    assert b"retry-after: 5" in refused and b"too_many_connections" in refused
    selector = selectors.DefaultSelector()
    for sock in sockets:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    open_left = len(sockets)
    deadline = started + timeout + SLACK
    while open_left and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.1):
            stalled = key.fileobj
            assert isinstance(stalled, socket.socket)
            try:
                data = stalled.recv(4096)  # the 408 answer first, then the end of the stream
            except OSError:
                data = b""
            if not data:
                selector.unregister(stalled)
                open_left -= 1
    elapsed = time.monotonic() - started
    selector.close()
    for sock in sockets:
        sock.close()
    assert not open_left, f"{open_left} of {STALLED} stalled connections still open after {elapsed:.1f} s"
    probe = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    status, _ = asyncio.run(one_upload(host, port, probe))
    assert status == "200"
    # Counted where an operator looks: the shim's /metrics.
    scrape = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    status, answer = asyncio.run(one_upload(host, port, scrape))
    assert status == "200"
    dropped = dict(
        re.findall(
            rb'^ims_worker_http_connections_dropped_total\{reason="(\w+)"\} (\S+)$', answer, re.MULTILINE
        )
    )
    assert float(dropped[b"refused_over_limit"]) >= 1
    assert float(dropped[b"header_timeout"]) >= STALLED


HEADER_FLOOD = 8
HEADER_FLOOD_BYTES = 40 * 1024 * 1024
# Seen before the header bound: 8 x 40 MB headers took the shim from 118 MB to 393 MB RSS (limit 256 Mi).
HEADER_FLOOD_GROWTH_LIMIT = 32 * MIB


def send_and_read(host: str, port: int, request: bytes) -> bytes:
    """Send ``request`` (as much of it as the server takes) and return the whole answer."""
    sock = socket.create_connection((host, port))
    sock.settimeout(30)
    with contextlib.suppress(OSError):  # the server stops reading once it has answered
        sock.sendall(request)
    answer = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            answer += chunk
    sock.close()
    return answer


def test_huge_headers_get_431_and_do_not_grow_the_process(shim: tuple[str, int, psutil.Process]) -> None:
    host, port, process = shim
    head = f"POST {ENDPOINTS['tencent']} HTTP/1.1\r\nHost: {host}\r\nX-Flood: ".encode()
    flood = head + b"a" * HEADER_FLOOD_BYTES
    idle = process.memory_info().rss
    stop, peaks = threading.Event(), [idle]
    sampler = threading.Thread(target=peak_rss, args=(process, stop, peaks), daemon=True)
    sampler.start()
    answers: list[bytes] = []
    try:
        senders = [
            threading.Thread(target=lambda: answers.append(send_and_read(host, port, flood)))
            for _ in range(HEADER_FLOOD)
        ]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
    finally:
        stop.set()
        sampler.join()
    growth = max(peaks) - idle
    print(
        f"RSS idle {idle / MIB:.0f} MiB, peak growth {growth / MIB:.1f} MiB, {HEADER_FLOOD} x 40 MB headers"
    )
    assert len(answers) == HEADER_FLOOD
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"] == "headers_too_large"
    assert growth < HEADER_FLOOD_GROWTH_LIMIT, f"RSS grew {growth / MIB:.0f} MiB"
    # Many short lines are bounded too (the default: 100 lines), and a request at the byte bound still passes.
    lines = b"".join(b"X-L%d: 1\r\n" % n for n in range(DEFAULTS.shim_max_header_lines + 1))
    answer = send_and_read(host, port, head.rpartition(b"X-Flood: ")[0] + lines + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    filler = b"a" * (DEFAULTS.shim_max_header_bytes - 200)
    probe = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Fill: " + filler + b"\r\nConnection: close\r\n\r\n"
    assert send_and_read(host, port, probe).startswith(b"HTTP/1.1 200")
    scrape = send_and_read(host, port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b'ims_worker_http_connections_dropped_total{reason="headers_too_large"} ' in scrape
