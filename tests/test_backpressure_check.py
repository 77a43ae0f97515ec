"""The consumer's shared backpressure check against a real Redis, with a clock the test moves."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from worker.mns.backpressure import Backpressure

HIGH, LOW = 10, 5


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    yield c
    c.config_set("maxmemory", 0)
    c.close()


def check(client: redis.Redis, clock: Clock) -> Backpressure:
    return Backpressure(
        client,
        ["ims", "unknown"],
        high_water=HIGH,
        low_water=LOW,
        check_seconds=0.5,
        memory_ratio=0.9,
        clock=clock,
    )


def test_pauses_at_high_water_counting_what_was_published_and_resumes_only_below_low_water(
    client: redis.Redis,
) -> None:
    clock = Clock()
    bp = check(client, clock)
    client.rpush("ims", *range(8))
    client.rpush("unknown", 1)
    assert bp.allow()  # 9 queued
    bp.published(1)  # not asked again within the interval: the estimate counts it
    with capture_logs() as logs:
        assert not bp.allow()
    assert logs[0]["event"] == "mns.backpressure.paused" and logs[0]["backlog"] == HIGH
    assert REGISTRY.get_sample_value("ims_worker_mns_paused") == 1
    client.ltrim("ims", 0, 4)  # 6 left: below the high mark, not below the low one
    clock.now += 0.5
    assert not bp.allow()
    assert REGISTRY.get_sample_value("ims_worker_mns_backlog", {"queue": "ims"}) == 5
    client.ltrim("ims", 0, 2)  # 4 left
    clock.now += 0.5
    with capture_logs() as logs:
        assert bp.allow()
    assert logs[0]["event"] == "mns.backpressure.resumed" and logs[0]["backlog"] == 4
    assert REGISTRY.get_sample_value("ims_worker_mns_paused") == 0


def test_pauses_near_redis_maxmemory(client: redis.Redis) -> None:
    clock = Clock()
    bp = check(client, clock)
    assert bp.allow()
    client.config_set("maxmemory", int(int(client.info("memory")["used_memory"]) / 0.95))
    clock.now += 0.5
    with capture_logs() as logs:
        assert not bp.allow()
    assert logs[0]["reason"] == "redis-memory"
    client.config_set("maxmemory", 0)
    clock.now += 0.5
    assert bp.allow()
