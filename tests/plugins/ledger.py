"""The event ledger: test handlers that record every run of themselves in Redis (chaos suite, RELIABILITY.md).

Loaded by the Celery worker through ``IMS_WORKER_HANDLER_MODULES=tests.plugins.ledger``. Every run appends
one entry to the stream ``chaos:ledger`` (``tests.chaos.spec.LEDGER_STREAM``) with the event id and type, the
handler, the attempt, the task id, the process id and thread, the time and whether the run succeeded. The
checker (``tests.chaos.ledger``) compares the stream with what the scenario sent.

* ``record_all`` (``*``) and ``record_ims`` (``ims.*``): always succeed, so "exactly once per handler" is
  checked for two handlers with different subscriptions;
* ``poison`` (``*``): succeeds, except for events whose payload carries ``ChaosPoison``: ``"retry"`` fails on
  every attempt (dead-lettered once the attempts are spent), ``"permanent"`` raises ``worker.Permanent``.

An event whose payload carries ``ChaosSlow`` (seconds) makes ``record_all`` count its start in
``chaos:started:<event id>`` and sleep that long before it records its run (the recovery scenario).

A run whose entry cannot be written (Redis down) raises, like any handler whose side effect failed: the task
wrapper retries it.
"""

from __future__ import annotations

import os
import threading
import time

import redis
from celery import current_task

from tests.chaos.spec import (
    LEDGER_STREAM,
    LEDGER_URL_ENV,
    POISON_FIELD,
    POISON_PERMANENT,
    SLOW_FIELD,
    started_key,
)
from worker import Event, Permanent, handler
from worker.redisconn import store_client
from worker.settings import load_settings

_client: tuple[int, redis.Redis] | None = None


def _redis() -> redis.Redis:
    # One connection per process: the worker forks its pool children after importing this module.
    global _client  # noqa: PLW0603
    if _client is None or _client[0] != os.getpid():
        # IMS_CHAOS_LEDGER_URL: a Redis outside the failure (the Sentinel failover scenario loses writes on
        # purpose, and the evidence must not go with them); else the worker's own store connection.
        url = os.environ.get(LEDGER_URL_ENV)
        client = redis.Redis.from_url(url, socket_timeout=5) if url else store_client(load_settings())
        _client = (os.getpid(), client)
    return _client[1]


def _record(event: Event, name: str, *, ok: bool) -> None:
    request = current_task.request if current_task else None
    _redis().xadd(
        LEDGER_STREAM,
        {
            "event_id": event.id,
            "type": event.type,
            "handler": f"{__name__}:{name}",
            "attempt": (request.retries + 1) if request is not None else 0,
            "task_id": (request.id or "") if request is not None else "",
            "pid": os.getpid(),
            "thread": threading.current_thread().name,
            "t": f"{time.time():.6f}",
            "ok": int(ok),
        },
    )


@handler("*")
def record_all(event: Event) -> None:
    seconds = event.raw.get(SLOW_FIELD)
    if seconds:
        _redis().incr(started_key(event.id))
        time.sleep(float(seconds))
    _record(event, "record_all", ok=True)


@handler("ims.*")
def record_ims(event: Event) -> None:
    _record(event, "record_ims", ok=True)


@handler("*")
def poison(event: Event) -> None:
    kind = event.raw.get(POISON_FIELD)
    if not kind:
        _record(event, "poison", ok=True)
        return
    _record(event, "poison", ok=False)
    if kind == POISON_PERMANENT:
        raise Permanent(f"poison event ({kind}): can never be handled")
    raise RuntimeError(f"poison event ({kind}): fails on every attempt")
