"""A worker's liveness means "makes progress", not "answers a ping".

Celery workers have been seen to stop consuming after a Redis reconnect or a Sentinel failover while their
remote-control channel still answers ``celery inspect ping`` (celery/celery #8030, #8082, #6348), which is
what a liveness probe built on ``inspect ping`` checks. Here the worker's main process records, every few
seconds, the last moment it made progress: it received a delivery (``task_received``), it holds deliveries
(busy: its pool is working), or it found every queue it was started to consume empty (nothing to take). A
consumer that stopped taking messages from a queue that holds some stops moving that moment. ``ims-worker
probe`` reads the record and fails when that moment is older than ``IMS_WORKER_WORKER_STALL_SECONDS``, or
when the record itself is stale (the process, or its recording thread, is stuck). When Redis cannot be asked,
nothing is recorded as progress but the probe is told so: restarting a worker does not bring Redis back.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis
import structlog

from worker.kombuadapter import held_deliveries
from worker.redisconn import REDIS_ERRORS

log = structlog.get_logger(__name__)

RECORD_INTERVAL_SECONDS = 5.0
# The record itself must be this fresh: a few missed intervals mean the process or its thread is stuck.
STALE_RECORD_SECONDS = 60.0


@dataclass
class Progress:
    pid: int
    queues: list[str]
    last_progress: float  # unix time
    why: str  # delivery | busy | queues empty | started
    written: float
    waiting: int  # messages in the queues at the last check (-1: unknown)
    redis_error: str | None = None


_last_delivery = 0.0


def record_delivery(**_: Any) -> None:
    """``task_received`` (main process): a delivery was taken from a queue."""
    global _last_delivery  # noqa: PLW0603 - one value per worker main process, read by the recorder
    _last_delivery = time.time()


class ProgressRecorder(threading.Thread):
    def __init__(
        self, path: Path, queues: Sequence[str], broker: redis.Redis, channel: Callable[[], Any]
    ) -> None:
        super().__init__(name="progress-recorder", daemon=True)
        self.path = path
        self.queues = list(queues)
        self._broker = broker
        self._channel = channel  # the consumer's current channel (for the deliveries it holds)
        now = time.time()
        self.state = Progress(os.getpid(), self.queues, now, "started", now, -1)
        self.stopping = threading.Event()

    def run(self) -> None:
        while True:
            try:
                self.record()
            except Exception as exc:  # noqa: BLE001 - the record goes stale, and the probe says so
                log.warning("worker.progress.record_failed", error=type(exc).__name__, detail=str(exc))
            if self.stopping.wait(RECORD_INTERVAL_SECONDS):
                return

    def record(self) -> Progress:
        now, state = time.time(), self.state
        if _last_delivery > state.last_progress:
            state.last_progress, state.why = _last_delivery, "delivery"
        channel = self._channel()
        if channel is not None and held_deliveries(channel):
            state.last_progress, state.why = now, "busy"
        try:
            with self._broker.pipeline(transaction=False) as pipe:
                for queue in self.queues:
                    pipe.llen(queue)
                state.waiting = sum(int(n) for n in pipe.execute())
            state.redis_error = None
        except REDIS_ERRORS as exc:
            state.waiting, state.redis_error = -1, type(exc).__name__
        if state.waiting == 0:
            state.last_progress, state.why = now, "queues empty"
        state.written = now
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(asdict(state)))
        temporary.replace(self.path)  # the probe never reads half a record
        return state

    def stop(self) -> None:
        self.stopping.set()


def verdict(path: Path, stall_seconds: float, now: float | None = None) -> tuple[bool, str]:
    """(alive, why) from the record at ``path``."""
    now = time.time() if now is None else now
    try:
        state = Progress(**json.loads(path.read_text()))
    except FileNotFoundError:
        return False, f"no progress record at {path} (the worker has not started, or records elsewhere)"
    except (OSError, ValueError, TypeError) as exc:
        return False, f"unreadable progress record at {path}: {exc}"
    age = now - state.written
    if age > STALE_RECORD_SECONDS:
        return False, f"the progress record is {age:.0f} s old: the worker's main process is stuck or gone"
    idle = now - state.last_progress
    if state.redis_error is not None and idle > stall_seconds:
        return True, f"Redis cannot be asked ({state.redis_error}): a restart would not help"
    if idle > stall_seconds:
        return False, (
            f"{state.waiting} messages wait in {', '.join(state.queues)} and the worker has taken none "
            f"for {idle:.0f} s (over {stall_seconds:g} s): its consumer is stuck"
        )
    return True, f"progress {idle:.0f} s ago ({state.why}); {state.waiting} messages waiting"
