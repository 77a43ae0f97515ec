"""The benchmarks' handler work, without registering it (``bench.plugin`` and ``bench.flow_plugin`` do).

``record`` is the "handler work" of the task-overhead benchmark and the probe of the end-to-end one: it
counts the event in Redis and, when the payload carries a send time (``UserData.bench_sent_at``), records how
long the event took from the send to the start of the handler. The Redis URL comes from ``BENCH_REDIS_URL``,
read on first use in each (forked) process, never at import.
"""

from __future__ import annotations

import os
import time

import redis

from bench.payloads import sent_at_of
from worker import Event

COUNTER_KEY = "bench:handled"
LATENCY_KEY = "bench:latency"
FIRST_KEY = "bench:first"  # time.time() when the first handler started
LAST_KEY = "bench:last"  # ... and when the latest one did

_client: redis.Redis | None = None
_client_pid = 0


def _redis() -> redis.Redis:
    global _client, _client_pid  # noqa: PLW0603 - one lazy client per process (prefork children fork)
    if _client is None or _client_pid != os.getpid():
        _client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
        _client_pid = os.getpid()
    return _client


def record(event: Event) -> None:
    started = time.time()
    sent_at = sent_at_of(event.raw)
    pipe = _redis().pipeline(transaction=False)
    if sent_at is not None:
        pipe.rpush(LATENCY_KEY, f"{event.transport.kind} {started - sent_at:.6f}")
    pipe.incr(COUNTER_KEY)
    pipe.set(FIRST_KEY, started, nx=True)
    pipe.set(LAST_KEY, started)
    pipe.execute()
