"""The webhook side of the service as a provider sees it: two shim replicas (each with its own spool
directory, as on two hosts) in front of one Redis, and a Celery worker with the ledger plugin behind it."""

from __future__ import annotations

import functools
import sqlite3
import time
from pathlib import Path

import httpx
import redis

from tests.chaos.ledger import Run, read_all
from tests.chaos.procs import Service, wait_for
from tests.chaos.stack import IMS_WORKER, Keys, Stack, broker_busy
from tests.servers import free_port
from worker.delivery.deadletter import DeadLetter
from worker.shim.spoolfile import summarize

PUBLIC_URL = "https://hooks.example.com"  # what the providers call: the load balancer's name
REPLICAS = ("shim-a", "shim-b")


class ReplicaStack(Stack):
    def __init__(self, workdir: Path, keys: Keys, *, extra_env: dict[str, str] | None = None) -> None:
        super().__init__(
            workdir, keys, extra_env={"IMS_WORKER_SHIM_PUBLIC_URL": PUBLIC_URL, **(extra_env or {})}
        )
        self.ports = {name: free_port() for name in REPLICAS}

    @property
    def replica_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{self.ports[name]}" for name in REPLICAS]

    def spool_dir(self, name: str) -> Path:
        return self.workdir / "state" / name

    def start(self, *, shim_only: bool = False) -> None:
        self.redis.start()
        self.services["worker"] = self.worker_service("worker")
        for name in REPLICAS:
            self.services[name] = self.replica(name)
        for service in self.services.values():
            service.start()
        self.wait_ready()

    def replica(self, name: str) -> Service:
        env = {**self.env(), "IMS_WORKER_SHIM_SPOOL_DIR": str(self.spool_dir(name))}
        return Service(name, [IMS_WORKER, "shim", "--port", str(self.ports[name])], env, self.logdir)

    def wait_ready(self, timeout: float = 60.0, roles: tuple[str, ...] = ()) -> None:
        for name in (*REPLICAS, "worker"):
            if not wait_for(functools.partial(self._ready, name), timeout):
                raise RuntimeError(f"{name} not ready after {timeout}s:\n{self.tail()}")

    def _ready(self, name: str) -> bool:
        if name == "worker":
            return len(self.worker_children()) >= self.concurrency and " ready." in self.output()
        return self.replica_ready(name)

    def replica_ready(self, name: str) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.ports[name]}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def results(self) -> tuple[list[Run], list[DeadLetter]]:
        """The ledger's runs and the dead letters, for the ledger check."""
        return read_all(self.redis_url)

    def spooled(self) -> int:
        try:
            return sum(
                summarize(path)[0] for name in REPLICAS for path in self.spool_dir(name).glob("spool-*.db")
            )
        except sqlite3.Error:
            return 1  # a file being created or removed right now: look again

    def idle(self) -> bool:
        try:
            busy = broker_busy(self.redis_url)
        except (redis.RedisError, OSError):
            return False
        return not busy and not self.spooled()

    def wait_idle(self, timeout: float, settle: float = 2.0) -> bool:
        deadline = time.monotonic() + timeout
        since: float | None = None
        while time.monotonic() < deadline:
            if self.idle():
                since = since or time.monotonic()
                if time.monotonic() - since >= settle:
                    return True
            else:
                since = None
            time.sleep(0.2)
        return False
