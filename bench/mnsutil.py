"""The bundled MNS emulator as a benchmark uses it: start it, create a queue, preload it, watch it drain.

Set-up (queues, preloading) and the drain counters go through the emulator's JSON admin API, which is not MNS
and is outside every measurement; what is measured (consumer, naive loop, e2e sends) uses the real SDK.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mns.account import Account
from mns.queue import Queue

from bench.procs import Stack, tool, wait_for_port
from worker.devtools.embedded import free_port

ACCESS_KEY_ID = "bench-key-id"
ACCESS_KEY_SECRET = "bench-key-secret"


@dataclass(frozen=True)
class Emulator:
    """The emulator at ``endpoint``: the SDK for MNS calls, its JSON admin API for set-up and counts."""

    endpoint: str

    def queue(self, name: str) -> Queue:
        queue = Account(self.endpoint, ACCESS_KEY_ID, ACCESS_KEY_SECRET).get_queue(name)
        queue.set_encoding(False)
        return queue

    def _admin(self, method: str, path: str, payload: object = None) -> dict[str, Any]:
        parts = urlsplit(self.endpoint)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        try:
            body = json.dumps(payload).encode() if payload is not None else None
            conn.request(
                method, f"/_emulator/{path}", body=body, headers={"Content-Type": "application/json"}
            )
            response = conn.getresponse()
            data: dict[str, Any] = json.loads(response.read() or b"{}")
        finally:
            conn.close()
        if response.status != 200:
            raise RuntimeError(f"emulator admin {method} {path}: {response.status} {data}")
        return data

    def create_queue(self, name: str, visibility_timeout: int = 60) -> None:
        self._admin("PUT", f"queues/{name}", {"visibility_timeout": visibility_timeout})

    def env(self, queue: str) -> dict[str, str]:
        """The consumer's settings pointing at this emulator."""
        return {
            "IMS_WORKER_MNS_ENDPOINT": self.endpoint,
            "IMS_WORKER_MNS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "IMS_WORKER_MNS_ACCESS_KEY_SECRET": ACCESS_KEY_SECRET,
            "IMS_WORKER_MNS_QUEUES": queue,
        }

    def preload(self, name: str, bodies: Sequence[str], chunk: int = 2000) -> None:
        """Through the admin API: preloading is set-up, not part of any measurement."""
        for i in range(0, len(bodies), chunk):
            self._admin("POST", f"queues/{name}/messages", {"bodies": list(bodies[i : i + chunk])})

    def stats(self, name: str) -> dict[str, int]:
        """active, inactive, delayed, sent, received, deleted, total."""
        queues: dict[str, dict[str, int]] = self._admin("GET", "state")["queues"]
        return queues[name]


def start_emulator(stack: Stack, name: str = "emulator") -> Emulator:
    port = free_port()
    service = stack.start(
        name,
        [
            tool("ims-worker"),
            "emulator",
            "mns",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--access-key-id",
            ACCESS_KEY_ID,
            "--access-key-secret",
            ACCESS_KEY_SECRET,
        ],
        env={"IMS_WORKER_LOG_LEVEL": "WARNING"},
    )
    wait_for_port(port, proc=service)
    return Emulator(f"http://127.0.0.1:{port}")


@dataclass
class Drain:
    """When the first message left the queue and when the queue was empty (visible and in flight)."""

    started: float = 0.0
    finished: float = 0.0

    @property
    def seconds(self) -> float:
        return self.finished - self.started


def watch_drain(
    emulator: Emulator,
    name: str,
    total: int,
    timeout: float,
    *,
    on_mark: Callable[[], object] = lambda: None,
    interval: float = 0.02,
) -> Drain:
    """Poll the queue's counters until all ``total`` messages are deleted; the clock starts when the first
    message is received. ``on_mark`` is called at both ends of the span (e.g. to read the consumer's CPU)."""
    drain = Drain()
    deadline = time.monotonic() + timeout
    stats: dict[str, int] = {}
    while time.monotonic() < deadline:
        stats = emulator.stats(name)
        now = time.perf_counter()
        if not drain.started and stats["received"] > 0:
            drain.started = now
            on_mark()
        if drain.started and stats["deleted"] >= total and stats["total"] == 0:
            drain.finished = now
            on_mark()
            return drain
        time.sleep(interval)
    raise TimeoutError(f"queue {name} not drained after {timeout}s: {stats}")
