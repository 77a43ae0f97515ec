"""A real ``celery -A worker.app worker`` subprocess for integration tests.

Usage::

    with running_worker({"IMS_WORKER_BROKER_URL": redis_url}) as worker:
        ...                     # publish events, wait for effects
        worker.kill_child()     # kill -9 the pool process running the task (prefork pool)

The worker sees only the variables given (plus PATH/HOME and the like): ``IMS_WORKER_*`` from the developer's
shell never leak in. Output goes to a log file (``worker.output()``), which is also how readiness is detected
(Celery's ``ready.`` line) and what a failing test prints.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory

REPO_ROOT = Path(__file__).resolve().parent.parent
CELERY = str(Path(sys.executable).with_name("celery"))
ALL_QUEUES = ("ims", "live", "rtc", "tencent", "unknown")
RECORDER = "tests.plugins.recorder"
# Under `make coverage` (coverage's subprocess patch sets this), a worker killed -9 would write no coverage
# data: stop it warm instead (slower, ~2 s, but only in that run).
MEASURED = "COVERAGE_PROCESS_CONFIG" in os.environ


def wait_until(predicate: Callable[[], object], timeout: float = 15.0, interval: float = 0.05) -> None:
    """Poll ``predicate`` until truthy; raise ``TimeoutError`` saying how long we waited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    if predicate():
        return
    raise TimeoutError(f"condition not met within {timeout}s")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError):
                found += [int(p) for p in (task / "children").read_text().split()]
    return found


@dataclass
class CeleryWorker:
    process: subprocess.Popen[bytes]
    log_path: Path
    hostname: str
    killed: list[int] = field(default_factory=list)
    final_output: str | None = None  # kept once the log file is gone

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        if self.final_output is not None:
            return self.final_output
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def child_pids(self) -> list[int]:
        """The pool processes (prefork); empty for the solo pool."""
        return [pid for pid in _children(self.pid) if pid not in self.killed]

    def kill_child(self, timeout: float = 10.0) -> int:
        """``kill -9`` the pool child (with concurrency 1, the one running the task); return its pid."""
        wait_until(self.child_pids, timeout=timeout)
        victim = self.child_pids()[0]
        os.kill(victim, signal.SIGKILL)
        self.killed.append(victim)
        return victim

    def kill(self) -> None:
        """``kill -9`` the whole worker (main process and pool): nothing gets to ack or requeue anything."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 15.0, *, warm: bool = False) -> None:
        """Cold (SIGQUIT) or warm (SIGTERM: lets running tasks finish) shutdown; then kill what is left."""
        if not self.alive():
            return
        self.process.send_signal(signal.SIGTERM if warm else signal.SIGQUIT)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)  # stray pool children, if any


def worker_env(env: Mapping[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("IMS_WORKER_", "CELERY_"))}
    base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), base.get("PYTHONPATH")]))
    base.setdefault("IMS_WORKER_LOG_LEVEL", "INFO")
    base.setdefault("IMS_WORKER_WORKER_METRICS_PORT", "0")  # tests that scrape it pass a free port
    base["IMS_WORKER_LOG_FORMAT"] = "console"
    spool = os.environ.get("IMS_WORKER_SHIM_SPOOL_DIR")  # the test's own (tests/conftest.py), never the cwd's
    if spool and "IMS_WORKER_STATE_DIR" not in env:
        base["IMS_WORKER_SHIM_SPOOL_DIR"] = spool
    base.update(env)
    return base


@contextlib.contextmanager
def running_worker(
    env: Mapping[str, str],
    *,
    queues: Sequence[str] = ALL_QUEUES,
    concurrency: int = 1,
    pool: str | None = "prefork",
    startup_timeout: float = 30.0,
    extra_args: Sequence[str] = (),
    wait_ready: bool = True,
    graceful_stop: bool = False,
) -> Iterator[CeleryWorker]:
    """Start a worker with ``env`` (``IMS_WORKER_*`` settings) and wait until it consumes.

    On exit the worker is killed (fast: a Celery shutdown takes ~2 s and the test is over anyway), or with
    ``graceful_stop`` given a warm shutdown that lets running tasks finish.
    """
    with TemporaryDirectory(prefix="celery-worker-") as tmp:
        log_path = Path(tmp) / "worker.log"
        hostname = f"test-{uuid.uuid4().hex[:8]}@%h"
        args = [
            CELERY, "-A", "worker.app", "worker",
            # pool None: no pool flags, the app's (IMS_WORKER_WORKER_PROFILE) decide
            *(["--pool", pool, "--concurrency", str(concurrency)] if pool else []),
            "--queues", ",".join(queues),
            "--hostname", hostname,
            "--without-mingle", "--without-gossip",
            "--loglevel", "INFO",
            *extra_args,
        ]  # fmt: skip
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                args,
                cwd=REPO_ROOT,
                env=worker_env(env),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so the pool children can be cleaned up too
            )
        worker = CeleryWorker(process=process, log_path=log_path, hostname=hostname)
        try:
            if wait_ready:
                _wait_ready(worker, startup_timeout)
            yield worker
        finally:
            if graceful_stop or MEASURED:
                worker.stop(warm=True)
            elif worker.alive():
                worker.kill()
            worker.final_output = worker.output()


def _wait_ready(worker: CeleryWorker, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if " ready." in worker.output():
            return
        if not worker.alive():
            raise RuntimeError(f"celery worker exited with {worker.process.returncode}:\n{worker.output()}")
        time.sleep(0.05)
    raise RuntimeError(f"celery worker not ready after {timeout}s:\n{worker.output()}")
