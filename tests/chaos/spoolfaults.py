"""The faults of the spool scenarios, each at the duration the issue names; ``note`` writes the timeline and
``faults.outages`` tells the ledger check when Redis was away (a handler that ran just before an outage may
run again: at-least-once, reported as "handled twice")."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable

import redis

from tests.chaos.ledger import Faults
from tests.chaos.procs import wait_for
from tests.chaos.replicas import ReplicaStack
from worker.shim.spoolfile import summarize

Note = Callable[[str], None]
FIRST_AFTER = 4.0  # seconds of healthy traffic before the fault


def _outage(faults: Faults) -> Callable[[], None]:
    began = time.time()
    faults.outages.append((began, began + 3600))
    index = len(faults.outages) - 1

    def close() -> None:
        faults.outages[index] = (began, time.time())

    return close


def redis_stopped(seconds: float) -> Callable[[ReplicaStack, Faults, Note], None]:
    def fault(stack: ReplicaStack, faults: Faults, note: Note) -> None:
        time.sleep(FIRST_AFTER)
        close = _outage(faults)
        stack.redis.stop()  # SIGTERM: Redis writes its AOF and exits
        note("redis stopped")
        time.sleep(seconds)
        stack.redis.start()  # the same port and directory: the AOF is loaded back
        close()
        note("redis restarted on its AOF")

    return fault


def redis_frozen(seconds: float) -> Callable[[ReplicaStack, Faults, Note], None]:
    def fault(stack: ReplicaStack, faults: Faults, note: Note) -> None:
        time.sleep(FIRST_AFTER)
        assert stack.redis.process is not None
        pid = stack.redis.process.pid
        close = _outage(faults)
        os.kill(pid, signal.SIGSTOP)
        note("redis SIGSTOP")
        try:
            time.sleep(seconds)
        finally:
            os.kill(pid, signal.SIGCONT)
            close()
            note("redis SIGCONT")

    return fault


def shim_killed_with_a_spool(outage: float) -> Callable[[ReplicaStack, Faults, Note], None]:
    """Redis stopped; once shim-a's spool holds events it is killed with kill -9 and started again (its
    successor adopts the file); Redis comes back ``outage`` seconds after it went."""

    def fault(stack: ReplicaStack, faults: Faults, note: Note) -> None:
        time.sleep(FIRST_AFTER)
        began = time.monotonic()
        close = _outage(faults)
        stack.redis.stop()
        note("redis stopped")
        spool = stack.spool_dir("shim-a")

        def held() -> int:
            return sum(summarize(p)[0] for p in spool.glob("spool-*.db"))

        wait_for(lambda: held() >= 20, timeout=outage / 2)
        note(f"shim-a holds {held()} spooled requests")
        pid = stack.services["shim-a"].kill9()
        note(f"shim-a kill -9 (pid {pid}), its spool left on disk with {held()} requests")
        time.sleep(2.0)
        stack.services["shim-a"].start()
        note("shim-a restarted")
        time.sleep(max(0.0, outage - (time.monotonic() - began)))
        stack.redis.start()
        close()
        note("redis restarted on its AOF")

    return fault


def the_issues_run(outage: float, freeze: float) -> Callable[[ReplicaStack, Faults, Note], None]:
    """The run issue 21 reported (399 of 1,200 IMS callbacks given up before the spool): Redis stopped for
    ``outage`` seconds with shim-a killed by kill -9 and restarted meanwhile, then, 4 s after Redis is back,
    Redis frozen with SIGSTOP for ``freeze`` seconds."""
    stopped, frozen = shim_killed_with_a_spool(outage), redis_frozen(freeze)

    def fault(stack: ReplicaStack, faults: Faults, note: Note) -> None:
        stopped(stack, faults, note)
        frozen(stack, faults, note)

    return fault


def redis_at_maxmemory(seconds: float) -> Callable[[ReplicaStack, Faults, Note], None]:
    """``maxmemory`` set just above what Redis uses (95% used: past the shim's 0.9 threshold, so the shims'
    writes would soon be refused), for ``seconds``."""

    def fault(stack: ReplicaStack, faults: Faults, note: Note) -> None:
        time.sleep(FIRST_AFTER)
        client = redis.Redis.from_url(stack.redis_url)
        try:
            used = int(client.info("memory")["used_memory"])
            client.config_set("maxmemory", int(used / 0.95))
            note(f"redis maxmemory {int(used / 0.95)} (used {used})")
            time.sleep(seconds)
            client.config_set("maxmemory", 0)
            note("redis maxmemory lifted")
        finally:
            client.close()

    return fault


def small_filesystem(size: str) -> tuple[Callable[[ReplicaStack], None], Callable[[ReplicaStack], None]]:
    """shim-a's spool directory on a tmpfs of ``size`` (needs root: ``mount``)."""

    def mount(stack: ReplicaStack) -> None:
        target = stack.spool_dir("shim-a")
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(target)], check=True
        )

    def unmount(stack: ReplicaStack) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            subprocess.run(["umount", str(stack.spool_dir("shim-a"))], check=True)

    return mount, unmount


def can_mount() -> str | None:
    """Why a tmpfs cannot be mounted here, or None."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    if shutil.which("mount") is None:
        return "no mount command"
    return None
