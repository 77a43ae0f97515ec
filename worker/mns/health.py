"""Liveness of the consumer: the time of the last successful poll, served on /healthz beside /metrics.

A poll that answered MessageNotExist counts as successful: an idle queue is healthy, a hung socket is not.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


class PollHealth:
    def __init__(self, max_silence_seconds: float, health_file: str | None = None) -> None:
        self.max_silence_seconds = max_silence_seconds
        self.health_file = Path(health_file) if health_file else None
        self._last_poll = time.monotonic()
        self._last_touch = 0.0
        self._lock = threading.Lock()

    def record_poll(self) -> None:
        now = time.monotonic()
        with self._lock:
            self._last_poll = now
            touch = self.health_file is not None and now - self._last_touch > 1.0
            if touch:
                self._last_touch = now
        if touch and self.health_file is not None:
            self.health_file.touch()

    def seconds_since_poll(self) -> float:
        with self._lock:
            return time.monotonic() - self._last_poll

    def healthy(self) -> bool:
        return self.seconds_since_poll() <= self.max_silence_seconds


def serve_health(health: PollHealth, host: str, port: int) -> ThreadingHTTPServer:
    """Serve /healthz and /metrics on a daemon thread; returns the server (``.server_port`` if port 0)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                body, status, ctype = generate_latest(), 200, CONTENT_TYPE_LATEST
            elif self.path.startswith("/healthz"):
                ok = health.healthy()
                since = health.seconds_since_poll()
                body = f'{{"ok": {str(ok).lower()}, "seconds_since_poll": {since:.1f}}}'.encode()
                status, ctype = (200 if ok else 503), "application/json"
            else:
                body, status, ctype = b'{"error": "not found"}', 404, "application/json"
            self._answer(status, body, ctype)

        def _answer(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # probes every few seconds would drown the structured log

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="consumer-health", daemon=True).start()
    return server
