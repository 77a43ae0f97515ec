"""Leases: with a short visibility timeout a live worker keeps every message it holds (running, or waiting
for a retry countdown) from being restored to another worker, and a dead worker's messages come back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu.connection import Connection

from tests.celery_worker import running_worker, wait_until
from tests.test_outbox import only_task_id
from tests.test_pipeline import SLOW, Probe, base_env, load
from worker import keyspace
from worker.delivery.publish import Publisher
from worker.execution.lease import LeaseKeeper
from worker.kombuadapter import held_deliveries
from worker.settings import Settings

pytestmark = pytest.mark.integration

LEASE = "2"  # seconds: the heartbeat beats every 0.5 s, kombu looks for expired leases every second


@pytest.fixture
def probe(redis_url: str) -> Iterator[Probe]:
    client = redis.Redis.from_url(redis_url)
    yield Probe(client)
    client.close()


def test_beat_rescores_what_the_channel_holds_and_nothing_else(redis_url: str) -> None:
    (event,) = load("ims", "FileUploadComplete", "ims")
    Publisher(Settings(broker_url=redis_url)).publish([event])
    client = redis.Redis.from_url(redis_url)
    connection: Any = Connection(redis_url)  # type: ignore[no-untyped-call]
    with connection:
        channel = connection.channel()
        message = channel.basic_get("ims", no_ack=False)  # a delivery, recorded in kombu's unacked index
        tag = message.delivery_tag
        client.zadd("unacked_index", {tag: 1.0})  # delivered long ago
        (delivery,) = held_deliveries(channel)
        assert delivery.tag == tag and delivery.task_id == message.headers["id"]
        keeper = LeaseKeeper(lambda: channel, client, lease_seconds=60, interval=10)
        before = time.time()
        assert keeper.beat() == 1
        assert (client.zscore("unacked_index", tag) or 0) >= before
        assert client.get(keyspace.held(message.headers["id"])) == tag.encode()
        assert (
            295_000 < client.pttl(keyspace.held(message.headers["id"])) <= 300_000
        )  # outlives kombu's restore
        channel.basic_ack(tag)
        assert keeper.beat() == 0
        assert client.zscore("unacked_index", tag) is None
        client.zadd("unacked_index", {"restored-meanwhile": 1.0})
        client.zrem("unacked_index", "restored-meanwhile")
        channel.qos._delivered["restored-meanwhile"] = message  # held in memory, gone from Redis
        assert keeper.beat() == 1
        assert client.zscore("unacked_index", "restored-meanwhile") is None  # XX: never re-added
        channel.close()
    client.close()


def test_a_task_running_three_leases_long_runs_once(redis_url: str, probe: Probe) -> None:
    (event,) = load("ims", "TranscodeComplete", "ims")
    probe.flag("slow", event, 6)  # three 2 s leases
    # Two children: a restored message would be taken by the idle one while the first still runs.
    env = base_env(redis_url, IMS_WORKER_BROKER_VISIBILITY_TIMEOUT=LEASE)
    with running_worker(env, concurrency=2) as worker:
        Publisher(Settings(broker_url=redis_url)).publish([event])
        task_id = only_task_id(probe.client)
        wait_until(lambda: probe.done(SLOW, event), timeout=30)
        wait_until(probe.idle)
        time.sleep(2.5)  # a late duplicate would start within one more lease
        output = worker.output()
    assert probe.started(event) == 1 and probe.runs("slow", event) == 1
    assert probe.client.get(keyspace.redeliveries(task_id)) is None  # never restored, not even to be skipped
    assert "lease.heartbeat_started" in output


def test_a_retry_waiting_for_its_countdown_keeps_its_lease(redis_url: str, probe: Probe) -> None:
    (event,) = load("ims", "TranscodeComplete", "ims")
    probe.flag("fail", event, 1)  # flaky fails once, then succeeds
    env = base_env(
        redis_url,
        IMS_WORKER_BROKER_VISIBILITY_TIMEOUT=LEASE,
        IMS_WORKER_RETRY_BACKOFF_SECONDS="8",  # the countdown: 4-8 s, two to four leases
        IMS_WORKER_RETRY_BACKOFF_MAX_SECONDS="8",
    )
    with running_worker(env, concurrency=2):
        Publisher(Settings(broker_url=redis_url)).publish([event])
        task_id = only_task_id(probe.client)
        wait_until(lambda: probe.runs("flaky", event) == 1, timeout=15)
        wait_until(lambda: probe.runs("flaky", event) == 2, timeout=20)
        wait_until(probe.idle)
        time.sleep(2.5)
    assert probe.runs("flaky", event) == 2 and probe.runs("record", event) == 1
    # The retry was not restored (and delivered again) while it waited for its countdown.
    assert probe.client.get(keyspace.redeliveries(task_id)) is None


def test_a_killed_workers_message_comes_back_after_one_lease(redis_url: str, probe: Probe) -> None:
    (event,) = load("live-record", "record_started", "live.record")
    probe.flag("slow", event, 60)
    env = base_env(redis_url, IMS_WORKER_BROKER_VISIBILITY_TIMEOUT=LEASE)
    with running_worker(env) as first:
        Publisher(Settings(broker_url=redis_url)).publish([event])
        wait_until(lambda: probe.started(event) == 1, timeout=15)
        time.sleep(3)  # longer than the lease: the heartbeat keeps it
        assert probe.started(event) == 1
        probe.unflag("slow", event)
        first.kill()  # main process and pool at once: no ack, no reject, no more heartbeats
        killed = time.monotonic()
    with running_worker(env):
        wait_until(lambda: probe.done(SLOW, event), timeout=20)
        recovered = time.monotonic() - killed
    assert probe.runs("slow", event) == 2 and probe.runs("record", event) == 1
    assert recovered < 15  # one 2 s lease, a restore interval and a worker start
