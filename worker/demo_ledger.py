"""The demo's handler plugin: records every handled event in a Redis hash, so ``--exit-when-done`` can tell.

Loaded only by ``ims-worker run --demo`` (through ``IMS_WORKER_HANDLER_MODULES``). It runs inside the real
task wrapper like any plugin, so an entry here means the event went all the way: received, normalized,
published, consumed by a Celery worker and handed to the handlers.
"""

from __future__ import annotations

import functools
import json
import time

import redis

from worker.events import Event
from worker.redisconn import sync_client
from worker.registry import handler
from worker.settings import load_settings

LEDGER_KEY = "ims-worker:demo:handled"


@functools.cache
def _client() -> redis.Redis:
    # Settings are read on first use, inside the worker process, never at import.
    return sync_client(load_settings().effective_redis_url)


def record(client: redis.Redis, event: Event) -> None:
    entry = {"type": event.type, "source": event.source, "transport": event.transport.kind, "at": time.time()}
    client.hset(LEDGER_KEY, event.id, json.dumps(entry))


@handler("*")
def record_demo_event(event: Event) -> None:
    """Note that ``event`` reached its handlers (a Redis failure raises, so the task is retried)."""
    record(_client(), event)


def handled(client: redis.Redis) -> dict[str, dict[str, object]]:
    """Event id -> what was recorded for it."""
    raw: dict[bytes, bytes] = client.hgetall(LEDGER_KEY)  # type: ignore[assignment]
    return {key.decode(): json.loads(value) for key, value in raw.items()}


def reset(client: redis.Redis) -> None:
    client.delete(LEDGER_KEY)
