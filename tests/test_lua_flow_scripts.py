"""The flow-control scripts of ``worker/lua/`` called directly against a real redis-server, with the KEYS and
ARGV their headers document (``FlowGate`` around them: test_flow_gate, test_flow_fleet)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from worker import keyspace, lua

pytestmark = pytest.mark.integration


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


def keys(handler: str = "h", key: str = "k") -> list[str]:
    return [
        keyspace.flow_lock(handler, key),
        keyspace.flow_newest(handler, key),
        keyspace.flow_slots(handler),
        keyspace.flow_rate(handler),
        keyspace.flow_booked(handler),
        keyspace.FLOW_DEFERRALS,
    ]


def acquire(
    client: redis.Redis,
    token: str,
    *,
    keyed: bool = False,
    occurred: str = "",
    concurrency: int = 0,
    interval: int = 0,
    booking: str = "",
) -> tuple[str, int]:
    args = [token, 60_000, "1" if keyed else "0", occurred, concurrency, interval, "h", booking or token]
    script: Callable[..., Any] = lua.register(client, "flow_acquire")
    verdict, wait = script(keys=keys(), args=args)
    return verdict.decode(), int(wait)


def deferrals(client: redis.Redis) -> dict[bytes, bytes]:
    return client.hgetall(keyspace.FLOW_DEFERRALS)  # type: ignore[return-value]


def test_acquire_a_key_lock_excludes_another_run_and_counts_it(client: redis.Redis) -> None:
    assert acquire(client, "run-1", keyed=True) == ("ok", 0)
    assert client.get(keyspace.flow_lock("h", "k")) == b"run-1"
    verdict, wait = acquire(client, "run-2", keyed=True)
    assert verdict == "key busy" and 59_000 < wait <= 60_000
    assert acquire(client, "run-1", keyed=True) == ("ok", 0)  # the holder itself may come again
    assert deferrals(client) == {b"h|key busy": b"1"}


def test_acquire_a_stale_event_is_turned_away(client: redis.Redis) -> None:
    client.set(keyspace.flow_newest("h", "k"), 2000)
    assert acquire(client, "run-1", keyed=True, occurred="1000") == ("stale", 0)
    assert acquire(client, "run-2", keyed=True, occurred="3000") == ("ok", 0)
    assert deferrals(client) == {b"h|stale": b"1"}


def test_acquire_concurrency_slots_are_bounded(client: redis.Redis) -> None:
    assert acquire(client, "a", concurrency=2)[0] == "ok"
    assert acquire(client, "b", concurrency=2)[0] == "ok"
    assert acquire(client, "c", concurrency=2) == ("concurrency limit", 0)
    assert client.zcard(keyspace.flow_slots("h")) == 2


def test_acquire_the_rate_books_the_next_start_and_keeps_it(client: redis.Redis) -> None:
    assert acquire(client, "a", interval=10_000) == ("ok", 0)
    verdict, wait = acquire(client, "b", interval=10_000, booking="task-b")
    assert verdict == "rate limited" and 9_000 < wait <= 10_000
    verdict, wait_again = acquire(client, "b2", interval=10_000, booking="task-b")  # its retry: same booking
    assert verdict == "rate limited" and wait_again <= wait
    assert client.zscore(keyspace.flow_booked("h"), "task-b") is not None
    verdict, later = acquire(client, "c", interval=10_000, booking="task-c")
    assert verdict == "rate limited" and later > wait_again + 9_000  # booked after b, not with it


def test_release_frees_the_lock_records_the_newest_and_frees_the_slot(client: redis.Redis) -> None:
    acquire(client, "run-1", keyed=True, concurrency=1)
    lock, newest, slots = keys()[:3]
    release = lua.register(client, "flow_release")
    assert release(keys=[lock, newest, slots], args=["someone-else", "5000", "1", 600]) == 1
    assert client.exists(lock) and not client.exists(newest)  # not its holder: nothing happens to the lock
    assert release(keys=[lock, newest, slots], args=["run-1", "5000", "1", 600]) == 1
    assert not client.exists(lock) and client.get(newest) == b"5000" and client.ttl(newest) > 590
    assert client.zcard(slots) == 0
    assert release(keys=["", "", ""], args=["x", "", "0", 600]) == 1  # nothing held


def test_renew_extends_the_holds_still_held_and_reports_the_lost_ones(client: redis.Redis) -> None:
    acquire(client, "run-1", keyed=True, concurrency=5)
    lock, _, slots = keys()[:3]
    client.pexpire(lock, 1000)
    renew = lua.register(client, "flow_renew")
    other_lock = keyspace.flow_lock("h", "gone")
    lost = renew(keys=[lock, slots, other_lock], args=[90_000, "l", "run-1", "s", "run-1", "l", "run-9"])
    assert lost == [3]
    assert client.pttl(lock) > 80_000
    seconds, micros = client.time()
    now_ms = seconds * 1000 + micros // 1000
    assert now_ms + 80_000 < (client.zscore(slots, "run-1") or 0) <= now_ms + 90_000  # the slot's lease, too
