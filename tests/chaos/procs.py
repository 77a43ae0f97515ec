"""Restartable subprocesses whose every incarnation's output is kept, and process-tree look-ups.

A ``Service`` is one command (``ims-worker consume``, ``ims-worker shim``, ``ims-worker run``...) that a
scenario may ``kill9()`` and ``start()`` again; each start writes to its own log file under the run directory,
so that the secret scan and the log statistics see the output of every process that ever ran.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.celery_worker import REPO_ROOT, worker_env


def children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                found += [int(p) for p in (task / "children").read_text().split()]
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return ""


def find_child(pid: int, needle: str) -> int | None:
    """The direct child of ``pid`` whose command line contains ``needle``."""
    for child in children(pid):
        if needle in cmdline(child):
            return child
    return None


def kill9(pid: int) -> bool:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


@dataclass
class Service:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    logdir: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0
    logs: list[Path] = field(default_factory=list)
    exits: list[tuple[int, int]] = field(default_factory=list)  # (pid, returncode) of every incarnation

    def start(self) -> None:
        self.starts += 1
        path = self.logdir / f"{self.name}-{self.starts}.log"
        self.logs.append(path)
        with path.open("wb") as log:
            self.process = subprocess.Popen(
                list(self.argv),
                cwd=REPO_ROOT,
                env=worker_env(self.env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: a kill reaches its children too
            )

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def unexpected_exit(self) -> int | None:
        """The return code if the process died on its own (not through ``kill9``/``stop``)."""
        if self.process is None:
            return None
        return self.process.poll()

    def kill9(self) -> int | None:
        """``kill -9`` the process group; returns the pid killed."""
        if self.process is None:
            return None
        pid = self.process.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        self.exits.append((pid, self.process.wait(timeout=10)))
        self.process = None
        self.kills += 1
        return pid

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, wait; SIGKILL whatever is left. Returns the return code of the graceful stop, if any."""
        if self.process is None:
            return None
        process, self.process = self.process, None
        code: int | None
        if process.poll() is not None:  # died earlier: that is reported as a crash, not as a stop
            self.exits.append((process.pid, process.returncode))
            return None
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        self.exits.append((process.pid, process.returncode))
        return code

    def output(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])


def wait_for(predicate: object, timeout: float, interval: float = 0.1) -> bool:
    """Poll ``predicate()`` until truthy; False on timeout (the caller decides what that means)."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
