"""Test handlers that record every run in Redis and misbehave on request, steered by flags set in Redis.

All subscribe to ``*``, so every event passes through them; with no flags set they just count. Keys:

* ``test:runs:<handler>:<event id>``: incremented on every run, successful or not;
* ``test:seen:<event id>``: the classes the handler received (proves handlers get typed events);
* ``test:fail:<event id>`` = N: ``flaky`` fails while N > 0 (decrementing), then succeeds;
* ``test:broken:<event id>``: ``fragile`` raises while the flag exists ("fixing" it = deleting the flag);
* ``test:permanent:<event id>``: ``fragile`` raises ``worker.Permanent`` instead;
* ``test:slow:<event id>`` = seconds: ``slow`` marks ``test:started:<event id>`` then sleeps that long.
"""

from __future__ import annotations

import os
import time

import redis

from worker import Event, Permanent, handler
from worker.redisconn import store_client
from worker.settings import load_settings

_client: tuple[int, redis.Redis] | None = None


def client() -> redis.Redis:
    # One connection per process: the worker forks its pool children after importing this module.
    global _client  # noqa: PLW0603
    if _client is None or _client[0] != os.getpid():
        # store_client: the TLS, ACL and Sentinel tests run this plugin too.
        _client = (os.getpid(), store_client(load_settings()))
    return _client[1]


def runs_key(handler_name: str, event_id: str) -> str:
    return f"test:runs:{handler_name}:{event_id}"


@handler("*")
def record(event: Event) -> None:
    r = client()
    r.incr(runs_key("record", event.id))
    r.hset(
        f"test:seen:{event.id}",
        mapping={
            "event_class": type(event).__qualname__,
            "data_class": f"{type(event.data).__module__}.{type(event.data).__qualname__}",
            "type": event.type,
            "source": event.source,
            "transport": event.transport.kind,
        },
    )


@handler("*")
def flaky(event: Event) -> None:
    r = client()
    r.incr(runs_key("flaky", event.id))
    remaining = r.decr(f"test:fail:{event.id}")
    if remaining >= 0:
        raise RuntimeError(f"flaky failure, {remaining} more to go")
    r.delete(f"test:fail:{event.id}")


@handler("*")
def fragile(event: Event) -> None:
    r = client()
    r.incr(runs_key("fragile", event.id))
    if r.exists(f"test:permanent:{event.id}"):
        raise Permanent("this event can never be handled")
    if r.exists(f"test:broken:{event.id}"):
        raise RuntimeError("fragile is broken for redis://user:hunter2@example.com/0")


@handler("*")
def slow(event: Event) -> None:
    r = client()
    r.incr(runs_key("slow", event.id))
    seconds = r.get(f"test:slow:{event.id}")
    if seconds is not None:
        r.incr(f"test:started:{event.id}")
        time.sleep(float(seconds))
