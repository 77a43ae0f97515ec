"""Handlers that wait, for the threads-pool tests (``tests/test_threads_pool.py``).

``wait_sync`` (``ims.FileUploadComplete``) sleeps in the thread; ``wait_async`` (``ims.UploadByURLComplete``)
awaits. Each run appends ``kind|event id|start|end|pid|thread`` to ``overlap:runs``. Per event id flags:
``overlap:hang:<id>`` = seconds to wait instead of ``overlap:seconds`` (default 0.3), and
``overlap:fail:<id>`` (raise ``worker.Permanent``).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time

import redis

from worker import Event, Permanent, handler
from worker.settings import load_settings

RUNS = "overlap:runs"
_client = redis.Redis.from_url(load_settings().effective_redis_url)  # thread-safe: shared by the threads


def _seconds(event: Event) -> float:
    hang = _client.get(f"overlap:hang:{event.id}")
    return float(hang or _client.get("overlap:seconds") or 0.3)


def _record(kind: str, event: Event, start: float) -> None:
    if _client.exists(f"overlap:fail:{event.id}"):
        raise Permanent(f"{kind} fails on purpose")
    thread = threading.current_thread().name
    _client.rpush(RUNS, f"{kind}|{event.id}|{start}|{time.time()}|{os.getpid()}|{thread}")


@handler("ims.FileUploadComplete", cpu_bound=False)
def wait_sync(event: Event) -> None:
    start = time.time()
    time.sleep(_seconds(event))
    _record("sync", event, start)


@handler("ims.UploadByURLComplete")
async def wait_async(event: Event) -> None:
    start = time.time()
    await asyncio.sleep(_seconds(event))
    _record("async", event, start)


@handler("ims.SnapshotComplete", cpu_bound=True)
def compute(event: Event) -> None:
    _record("cpu", event, time.time())
