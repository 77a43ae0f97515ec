"""Handlers still running past the task's time limits where Celery cannot stop them (the threads pool).

Celery enforces ``task_soft_time_limit`` and ``task_time_limit`` with signals to a prefork child; a thread
cannot be interrupted, so under the threads pool it enforces neither. An ``async def`` handler is still cut
at the soft limit (``worker.execution.asyncrun`` cancels its await). A sync handler is not: it runs on,
holding its pool thread, its delivery kept leased by the heartbeat (so it is never restored to another
worker and run twice), its result recorded when it returns. What this module adds is that an operator hears
of it: a watchdog thread logs ``task.handler_overrunning`` once when a handler passes the soft limit and
``task.handler_stuck`` once past the hard limit (restart the worker to free the thread: the delivery then
comes back and the handler, not recorded done, runs again). Handlers on a process's main thread (prefork,
solo) are Celery's to stop and are not watched.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import structlog

log = structlog.get_logger(__name__)

SCAN_SECONDS = 1.0


@dataclass
class _Run:
    handler: str
    started: float
    soft: float
    hard: float
    context: contextvars.Context  # the task's log context (task_id, event_id), for the watchdog's lines
    warned: set[str] = field(default_factory=set)


class Watchdog:
    def __init__(self, scan_seconds: float = SCAN_SECONDS) -> None:
        self.pid = os.getpid()
        self._runs: dict[int, _Run] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._scan = scan_seconds
        self._thread = threading.Thread(target=self._loop, name="handler-watchdog", daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def watch(self, handler: str, soft: float, hard: float) -> Iterator[None]:
        run_id = next(self._ids)
        run = _Run(handler, time.monotonic(), soft, hard, contextvars.copy_context())
        with self._lock:
            self._runs[run_id] = run
        try:
            yield
        finally:
            with self._lock:
                del self._runs[run_id]
            if run.warned:
                seconds = round(time.monotonic() - run.started, 1)
                log.warning("task.handler_overran", handler=handler, seconds=seconds)

    def _loop(self) -> None:
        while True:
            time.sleep(self._scan)
            self.check()

    def check(self) -> None:
        now = time.monotonic()
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            ran = now - run.started
            for kind, limit in (("overrunning", run.soft), ("stuck", run.hard)):
                if ran > limit and kind not in run.warned:
                    run.warned.add(kind)
                    run.context.run(_say, kind, run.handler, ran, limit)


def _say(kind: str, handler: str, ran: float, limit: float) -> None:
    facts = {"handler": handler, "seconds": round(ran, 1), "limit_seconds": limit}
    why = "a thread cannot be stopped: the handler keeps its pool thread"
    if kind == "overrunning":
        log.error("task.handler_overrunning", **facts, reason=f"past the soft time limit; {why}")
    else:
        log.error("task.handler_stuck", **facts, reason=f"past the hard time limit; {why}")


_watchdog: Watchdog | None = None
_lock = threading.Lock()


def watching(handler: str, soft: float, hard: float) -> contextlib.AbstractContextManager[None]:
    """Watch one handler run, when it runs off the main thread (the threads pool); else do nothing."""
    global _watchdog  # noqa: PLW0603 - one watchdog thread per process
    if threading.current_thread() is threading.main_thread():
        return contextlib.nullcontext()
    dog = _watchdog
    if dog is None or dog.pid != os.getpid():
        with _lock:
            if _watchdog is None or _watchdog.pid != os.getpid():
                _watchdog = Watchdog()
            dog = _watchdog
    return dog.watch(handler, soft, hard)
