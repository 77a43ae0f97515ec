"""Liveness of the consumer: the time of the last successful poll, served on /healthz beside /metrics.

A poll that answered MessageNotExist counts as successful: an idle queue is healthy, a hung socket is not.
The server is bounded like the shim's (``worker.boundedhttp``): a connection cap and a read deadline.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from worker.boundedhttp import CONFIG_ATTRIBUTE, PROTOCOL, ConnectionLimits


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


HEALTH_LIMITS = ConnectionLimits(max_connections=64, header_timeout=5.0, body_timeout=5.0)
_JSON = b"application/json"
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def health_app(health: PollHealth) -> ASGIApp:
    """/healthz (200, or 503 once no poll succeeded for too long) and /metrics (Prometheus)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path.startswith("/metrics"):
            body, status, ctype = generate_latest(), 200, CONTENT_TYPE_LATEST.encode()
        elif path.startswith("/healthz"):
            ok = health.healthy()
            since = health.seconds_since_poll()
            body = f'{{"ok": {str(ok).lower()}, "seconds_since_poll": {since:.1f}}}'.encode()
            status, ctype = (200 if ok else 503), _JSON
        else:
            body, status, ctype = b'{"error": "not found"}', 404, _JSON
        headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


class HealthServer:
    """uvicorn on a daemon thread with the bounded protocol of ``worker.boundedhttp``: at most 64
    connections, each closed unless its request arrives within 5 s (probes every few seconds need no more;
    the old server opened one thread per connection and kept idle ones forever)."""

    def __init__(self, health: PollHealth, host: str, port: int) -> None:
        self._socket = socket.create_server((host, port), family=_family(host), backlog=64)
        self.server_port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            health_app(health),
            http=PROTOCOL,
            ws="none",
            lifespan="off",
            access_log=False,
            log_config=None,  # our root handler renders uvicorn's lines
            log_level="warning",
            timeout_keep_alive=5,
        )
        setattr(config, CONFIG_ATTRIBUTE, HEALTH_LIMITS)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="consumer-health", daemon=True
        )

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def shutdown(self, timeout: float = 5.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        self._socket.close()


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def serve_health(health: PollHealth, host: str, port: int) -> HealthServer:
    """Serve /healthz and /metrics on a daemon thread; returns the server (``.server_port`` if port 0)."""
    return HealthServer(health, host, port).start()
