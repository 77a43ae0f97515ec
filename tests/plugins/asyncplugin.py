"""``async def`` handlers for the real-worker tests of ``worker.asyncrun``, steered by Redis flags.

Each run appends ``<pid>:<id of the running loop>`` to ``async:loops`` (proves the loop is the process's and
reused), and counts runs in ``async:runs:<event id>``. Flags (per event id):

* ``async:fail:<id>`` = N: raise ``worker.Retry`` while N > 0 (decrementing), then succeed;
* ``async:permanent:<id>``: raise ``worker.Permanent``;
* ``async:hang:<id>``: await forever (the soft time limit must cut it).
"""

from __future__ import annotations

import asyncio
import os

import redis

from worker import Event, Permanent, Retry, handler
from worker.settings import load_settings


def _client() -> redis.Redis:
    return redis.Redis.from_url(load_settings().effective_redis_url)


@handler("ims.*")
async def async_ims(event: Event) -> None:
    await asyncio.sleep(0.01)  # really suspends: a never-awaited coroutine would not get here
    client = _client()
    try:
        client.rpush("async:loops", f"{os.getpid()}:{id(asyncio.get_running_loop())}")
        client.incr(f"async:runs:{event.id}")
        if client.exists(f"async:permanent:{event.id}"):
            raise Permanent("async handler says never")
        if client.decr(f"async:fail:{event.id}") >= 0:
            raise Retry("async handler asks again", countdown=0.05)
        client.delete(f"async:fail:{event.id}")
        hang = client.exists(f"async:hang:{event.id}")
    finally:
        client.close()
    if hang:
        await asyncio.Event().wait()
