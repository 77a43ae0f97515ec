"""Publishing against a real Redis: message format, dedupe, one round trip per batch, broker outages."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from typing import Any, cast

import pytest
import redis
from celery import Celery

from tests.conftest import SAMPLES_DIR
from tests.servers import RedisServer, free_port
from worker import keyspace
from worker.delivery.publish import AsyncPublisher, Publisher, PublishResult
from worker.delivery.taskmessage import new_task_id
from worker.devtools.demo import load_samples
from worker.errors import BrokerUnavailable
from worker.events import Event
from worker.execution.celeryconfig import celery_config
from worker.providers import dedupe_ttl, normalize
from worker.settings import Settings

pytestmark = pytest.mark.integration


def sample(source_dir: str, name: str, source: str) -> list[Event]:
    return normalize(source, (SAMPLES_DIR / source_dir / f"{name}.json").read_bytes())


def all_samples() -> list[Event]:
    return [event for s in load_samples() for event in normalize(s.source, s.body)]


def unknown_event() -> Event:
    (event,) = normalize("ims", b'{"EventType": "BrandNewEvent", "MessageBody": {"JobId": "j-1"}}')
    return event


def queued(url: str, queue: str) -> list[dict[str, Any]]:
    client = redis.Redis.from_url(url)
    try:
        return [json.loads(m) for m in reversed(client.lrange(queue, 0, -1))]  # consumer order (RPOP)
    finally:
        client.close()


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return Settings(broker_url=redis_url)


@pytest.fixture
def publisher(settings: Settings) -> Any:
    pub = Publisher(settings)
    yield pub
    pub.close()


def test_message_is_what_celery_send_task_would_put(redis_url: str, publisher: Publisher) -> None:
    (event,) = sample("ims", "ProduceMediaComplete", "ims")
    (result,) = publisher.publish([event])
    assert result == PublishResult(event_id=event.id, type="ims.ProduceMediaComplete", enqueued=True)
    (ours,) = queued(redis_url, "ims")

    # The reference: Celery itself sending the same task (the event by id), through kombu's Redis transport.
    reference_app = Celery("reference", set_as_current=False)
    reference_app.conf.update(celery_config(Settings(broker_url=redis_url.replace("/0", "/1"))))
    task_id = ours["headers"]["id"]
    reference_app.send_task(event.type, args=[event.id], task_id=task_id)
    (theirs,) = queued(redis_url.replace("/0", "/1"), "ims")
    reference_app.close()

    assert set(ours) == set(theirs)
    # What Celery's worker cannot default (the task and its id) and what Flower shows as the arguments. Left
    # out: headers at Celery's default, and lang, root_id and origin, which it reads with a default too.
    assert ours["headers"] == {"task": event.type, "id": task_id, "argsrepr": f'["{event.id}"]'}
    for key in set(theirs["headers"]) - {"lang", "root_id", "origin", "argsrepr", "task", "id"}:
        assert theirs["headers"][key] in (None, 0, False, {}, "{}", [None, None]), key
    assert set(ours["properties"]) <= set(theirs["properties"])
    assert ours["properties"]["delivery_info"] == theirs["properties"]["delivery_info"]
    assert ours["properties"]["delivery_tag"] == task_id  # the sweeper asks kombu's unacked hash by it
    # Both store the body as JSON text (the worker app's transport option), not base64.
    assert ours["properties"]["body_encoding"] == theirs["properties"]["body_encoding"] == "utf-8"
    assert ours["content-type"] == theirs["content-type"] == "application/json"
    our_body, their_body = json.loads(ours["body"]), json.loads(theirs["body"])
    assert our_body == [[event.id], {}, {}] and their_body[0] == [event.id]

    # The event is in Redis once: in the message's outbox record, which the task reads.
    client = redis.Redis.from_url(redis_url)
    record = cast(bytes | None, client.hget(keyspace.OUTBOX, task_id))
    assert record is not None and record.startswith(b"ims\n")
    stored = json.loads(record.partition(b"\n")[2])
    assert "data" not in stored  # derived again from raw
    assert Event.model_validate(stored) == event
    job_id = event.raw["MessageBody"]["JobId"].encode()
    stored_values = [value for key in client.scan_iter() for value in _values(client, key)]
    client.close()
    assert sum(value.count(job_id) for value in stored_values) == 1


def _values(client: redis.Redis, key: bytes) -> list[bytes]:
    kind = client.type(key)
    if kind == b"list":
        found: Any = client.lrange(key, 0, -1)
    elif kind == b"hash":
        found = client.hvals(key)
    elif kind == b"zset":
        found = client.zrange(key, 0, -1)
    elif kind == b"string":
        found = [client.get(key)]
    else:
        raise AssertionError(f"unexpected {kind!r} at {key!r}")
    return cast(list[bytes], found)


def test_each_event_goes_to_its_source_queue(redis_url: str, publisher: Publisher) -> None:
    events = [*all_samples(), unknown_event()]
    results = publisher.publish(events)
    assert all(r.enqueued for r in results)
    expected = {"ims": 29, "live": 8, "rtc": 2, "tencent": 4, "unknown": 1}
    assert {q: len(queued(redis_url, q)) for q in expected} == expected
    assert queued(redis_url, "unknown")[0]["headers"]["task"] == "unknown.ims"


def test_queue_routes_override(redis_url: str) -> None:
    settings = Settings(broker_url=redis_url, queue_routes={"rtc": "realtime"})
    publisher = Publisher(settings)
    publisher.publish(sample("rtc", "eventsub", "rtc"))
    publisher.close()
    assert len(queued(redis_url, "realtime")) == 2
    assert queued(redis_url, "rtc") == []


def test_duplicates_are_skipped_within_a_batch_and_across_batches(
    redis_url: str, publisher: Publisher, settings: Settings
) -> None:
    (event,) = sample("tencent-css", "TaskStart", "tencent")
    first = publisher.publish([event, event])
    second = publisher.publish([event])
    assert [r.enqueued for r in first + second] == [True, False, False]
    assert len(queued(redis_url, "tencent")) == 1
    client = redis.Redis.from_url(redis_url)
    ttl = client.ttl(keyspace.dedupe(event.id))
    assert dedupe_ttl(settings, "tencent") - 5 <= ttl <= dedupe_ttl(settings, "tencent")
    assert client.get(keyspace.dedupe(event.id)) == b"1"
    client.close()


def test_dedupe_window_is_per_source(redis_url: str) -> None:
    # An override changes one source; the others keep their provider's default (ims: 7 days).
    settings = Settings(broker_url=redis_url, dedupe_ttl_seconds={"live.record": 60, "unknown": 120})
    publisher = Publisher(settings)
    (record,) = sample("live-record", "record_started", "live.record")
    publisher.publish([record, unknown_event()])
    publisher.close()
    client = redis.Redis.from_url(redis_url)
    assert 55 <= client.ttl(keyspace.dedupe(record.id)) <= 60
    assert 7 * 86400 - 5 <= client.ttl(keyspace.dedupe(unknown_event().id)) <= 7 * 86400
    client.close()


def test_bypass_dedupe_enqueues_again(redis_url: str, publisher: Publisher) -> None:
    (event,) = sample("ims", "FileUploadComplete", "ims")
    publisher.publish([event])
    (again,) = publisher.publish([event], bypass_dedupe=True)
    assert again.enqueued
    assert len(queued(redis_url, "ims")) == 2


# What the journal fragment (worker/lua/journal.lua) runs inside the publish script.
JOURNAL_COMMANDS = (
    "zscore",
    "rpush",
    "expire",
    "zremrangebyrank",
    "zrangebyscore",
    "zcard",
    "zremrangebyscore",
)


def test_a_batch_is_one_round_trip_and_survives_script_flush(redis_url: str, publisher: Publisher) -> None:
    events = all_samples()[:16]
    publisher.publish(events[:1])  # loads the script once
    client = redis.Redis.from_url(redis_url)
    before = client.info("commandstats")
    publisher.publish(events[1:16])
    after = client.info("commandstats")
    calls = {k: after[k]["calls"] - before.get(k, {"calls": 0})["calls"] for k in after}
    assert calls.pop("cmdstat_evalsha") == 1
    assert calls.pop("cmdstat_info") == 1
    own = ("set", "lpush", "hset", "zadd")
    inside_the_script = tuple(f"cmdstat_{c}" for c in (*own, *JOURNAL_COMMANDS))  # the journal: same script
    assert {k: v for k, v in calls.items() if v and not k.startswith(inside_the_script)} == {}

    client.script_flush()  # e.g. a Redis restart: EVALSHA answers NOSCRIPT, the script is loaded again
    (result,) = publisher.publish([unknown_event()])
    assert result.enqueued
    client.close()


def test_unreachable_redis_raises_broker_unavailable_without_secrets() -> None:
    url = f"redis://:s3cret-pass@127.0.0.1:{free_port()}/0"
    publisher = Publisher(Settings(broker_url=url))
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable) as caught:
        publisher.publish(sample("ims", "FileUploadComplete", "ims"))
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert "unreachable" in message and "127.0.0.1" in message
    assert "s3cret-pass" not in message
    assert not publisher.ping()
    publisher.close()


def test_redis_outage_then_recovery(redis_server: RedisServer, redis_url: str, publisher: Publisher) -> None:
    (event,) = sample("ims", "FileUploadComplete", "ims")
    redis_server.stop()
    try:
        with pytest.raises(BrokerUnavailable):
            publisher.publish([event])
    finally:
        redis_server.start()
    # Right after a restart Redis may still be loading its AOF (BUSY LOADING): that, too, is "unavailable".
    deadline = time.monotonic() + 15
    while True:
        try:
            (result,) = publisher.publish([event])
            break
        except BrokerUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    assert result.enqueued


def test_markers_on_another_redis_go_through_kombu(redis_url: str) -> None:
    broker = redis_url.replace("/0", "/2")
    settings = Settings(broker_url=broker, redis_url=redis_url)
    publisher = Publisher(settings)
    (event,) = sample("ims", "FileUploadComplete", "ims")
    results = publisher.publish([event, event])
    publisher.close()
    assert [r.enqueued for r in results] == [True, False]
    (message,) = queued(broker, "ims")
    assert message["headers"]["task"] == event.type
    (args,) = json.loads(message["body"])[0]
    assert "data" not in args
    assert Event.model_validate(args) == event
    marker = redis.Redis.from_url(redis_url)
    assert marker.get(keyspace.dedupe(event.id)) == b"1"
    marker.close()


def test_failed_send_removes_markers_so_the_retry_is_not_a_duplicate(redis_url: str) -> None:
    dead_broker = f"amqp://guest:topsecret@127.0.0.1:{free_port()}//"
    publisher = Publisher(Settings(broker_url=dead_broker, redis_url=redis_url))
    (event,) = sample("ims", "FileUploadComplete", "ims")
    with pytest.raises(BrokerUnavailable) as caught:
        publisher.publish([event])
    publisher.close()
    assert "topsecret" not in str(caught.value)
    marker = redis.Redis.from_url(redis_url)
    assert marker.exists(keyspace.dedupe(event.id)) == 0
    marker.close()


def test_async_publisher(redis_url: str) -> None:
    async def scenario() -> tuple[list[PublishResult], bool, bool]:
        publisher = AsyncPublisher(Settings(broker_url=redis_url))
        events = sample("rtc", "eventsub", "rtc")
        results = await publisher.publish([*events, events[0]])
        alive = await publisher.ping()
        await publisher.aclose()
        down = AsyncPublisher(Settings(broker_url=f"redis://127.0.0.1:{free_port()}/0"))
        dead = await down.ping()
        with pytest.raises(BrokerUnavailable):
            await down.publish(events)
        await down.aclose()
        return results, alive, dead

    results, alive, dead = asyncio.run(scenario())
    assert [r.enqueued for r in results] == [True, True, False]
    assert alive and not dead
    assert len(queued(redis_url, "rtc")) == 2


def test_publish_rate(redis_url: str, publisher: Publisher) -> None:
    """Measured, not a benchmark: thousands of events per second in consumer-sized batches of 16."""
    base = all_samples()
    events = [e.model_copy(update={"id": f"{e.id}:{i}"}) for i in range(40) for e in base]  # 1,880 events
    started = time.perf_counter()
    for i in range(0, len(events), 16):
        publisher.publish(events[i : i + 16])
    rate = len(events) / (time.perf_counter() - started)
    print(f"publish: {rate:,.0f} events/s in batches of 16")
    assert rate > 500  # a sanity floor only: shared 2-core machines are noisy (measured ~12,000 when idle)


def test_task_ids_are_version_4_uuids_unique_across_a_fork() -> None:
    ids = {new_task_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(uuid.UUID(i).version == 4 and uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # a forked shim or consumer process must not repeat its parent's ids
        os.write(write_end, new_task_id().encode())
        os._exit(0)
    os.waitpid(child, 0)
    from_child = os.read(read_end, 64).decode()
    os.close(read_end)
    os.close(write_end)
    assert from_child != new_task_id()
    assert uuid.UUID(from_child).version == 4
