"""Processes a benchmark starts: a private redis-server, service subprocesses, and their CPU/RSS sampling.

Everything is started in its own session so that a stop reaches the whole tree (uvicorn workers, Celery pool
children) by the process-group id of the child we started, and nothing else. Subprocesses run in a scratch
directory (so no stray ``.env`` is read) with the repository on ``PYTHONPATH`` (so ``bench.*`` imports).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from worker.devtools.embedded import free_port, redis_server_binary

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def wait_for_port(port: int, timeout: float = 20.0, proc: Service | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log_tail()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def tool(name: str) -> str:
    """A console script of this virtualenv (``ims-worker``, ``celery``, ``uvicorn``)."""
    path = VENV_BIN / name
    return str(path) if path.exists() else name


def base_env(extra: Mapping[str, str]) -> dict[str, str]:
    # Drop the caller's IMS_WORKER_* so that only what the benchmark sets is in force.
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMS_WORKER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass
class Service:
    """One started subprocess (and its process group)."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> float:
        """User + system CPU of the whole tree (children that exited are not counted: sample while alive)."""
        total = 0.0
        for proc in self.tree():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def rss_bytes(self) -> int:
        total = 0
        for proc in self.tree():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                total += proc.memory_info().rss
        return total

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        # The leader may be gone while pool children linger: make sure the group is empty.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Stack:
    """The processes of one benchmark run; ``close()`` stops them all, newest first."""

    workdir: Path
    services: list[Service] = field(default_factory=list)

    def start(self, name: str, args: Sequence[str], env: Mapping[str, str] | None = None) -> Service:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log_path = self.workdir / f"{name}.log"
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                list(args),
                cwd=self.workdir,
                env=base_env(env or {}),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        service = Service(name, popen, log_path)
        self.services.append(service)
        return service

    def service(self, name: str) -> Service:
        return next(service for service in self.services if service.name == name)

    def redis(self, name: str = "redis") -> str:
        """A private redis-server (AOF everysec, like production) on a free port; returns its URL."""
        port = free_port()
        data = self.workdir / name
        shutil.rmtree(data, ignore_errors=True)  # a fresh, empty server: no AOF of an earlier run is loaded
        data.mkdir(parents=True)
        args = [
            redis_server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--maxmemory-policy",
            "noeviction",
            # No automatic AOF rewrite: a benchmark fills Redis with nobody consuming, and the rewrite's fork
            # in the middle of a measurement would land on whichever side happened to be running.
            "--auto-aof-rewrite-percentage",
            "0",
            "--daemonize",
            "no",
        ]
        service = self.start(name, args)
        wait_for_port(port, proc=service)
        return f"redis://127.0.0.1:{port}/0"

    def close(self) -> None:
        for service in reversed(self.services):
            service.stop()
        self.services.clear()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PeakSampler(threading.Thread):
    """Samples the summed RSS of some service trees every ``interval`` seconds and keeps the peaks (the
    peak of the sum, and the largest single tree)."""

    def __init__(self, services: Sequence[Service], interval: float = 0.05) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.services = list(services)
        self.interval = interval
        self.peak_rss = 0
        self.peak_single_rss = 0
        self._finished = threading.Event()

    def _sample(self) -> None:
        sizes = [service.rss_bytes() for service in self.services]
        self.peak_rss = max(self.peak_rss, sum(sizes))
        self.peak_single_rss = max(self.peak_single_rss, *sizes)

    def run(self) -> None:
        while not self._finished.is_set():
            self._sample()
            self._finished.wait(self.interval)

    def stop(self) -> int:
        self._finished.set()
        self.join(2)
        self._sample()
        return self.peak_rss
