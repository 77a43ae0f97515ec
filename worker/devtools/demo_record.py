"""The demo ledger in Redis: which events reached their handlers during ``ims-worker run --demo``.

Written by the demo's handler plugin (``worker.devtools.demo_ledger``), read by ``worker.devtools.demo``.
Kept apart from the
plugin so that reading it never registers the plugin's handler in the reading process.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from worker import keyspace
from worker.events import Event

LEDGER_KEY = keyspace.DEMO_HANDLED


def record(client: redis.Redis, event: Event) -> None:
    entry = {"type": event.type, "source": event.source, "transport": event.transport.kind, "at": time.time()}
    client.hset(LEDGER_KEY, event.id, json.dumps(entry))


def handled(client: redis.Redis) -> dict[str, dict[str, Any]]:
    """Event id -> what was recorded for it (type, source, transport, at)."""
    raw: dict[bytes, bytes] = client.hgetall(LEDGER_KEY)  # type: ignore[assignment]
    return {key.decode(): json.loads(value) for key, value in raw.items()}


def reset(client: redis.Redis) -> None:
    client.delete(LEDGER_KEY)
