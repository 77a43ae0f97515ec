"""The demo's handler plugin: records every event it handles in a Redis hash
(``worker.devtools.demo_record``).

Loaded only by ``ims-worker run --demo`` (through ``IMS_WORKER_HANDLER_MODULES``). It runs inside the real
task wrapper like any plugin, so an entry means the event went all the way: received, normalized, published,
consumed by a Celery worker and handed to the handlers. (The demo then also checks the wrapper's done markers
of every other handler of that event, so a failing sibling handler is not mistaken for success.)
"""

from __future__ import annotations

import functools

import redis

from worker.devtools.demo_record import record
from worker.events import Event
from worker.execution.registry import handler
from worker.redisconn import store_client
from worker.settings import load_settings


@functools.cache
def _client() -> redis.Redis:
    # Settings are read on first use, inside the worker process, never at import.
    return store_client(load_settings())


@handler("*")
def record_demo_event(event: Event) -> None:
    """Note that ``event`` reached its handlers (a Redis failure raises, so the task is retried)."""
    record(_client(), event)
