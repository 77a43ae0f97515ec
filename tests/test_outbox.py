"""The outbox closes kombu's BRPOP window: a task message taken from the queue and then lost (Redis stopped
before the worker recorded it as unacked) is enqueued again by the sweeper, and handled once."""

from __future__ import annotations

import json
import time

import pytest
import redis

from tests.celery_worker import RECORDER, running_worker, wait_until
from tests.conftest import SAMPLES_DIR
from tests.plugins.recorder import runs_key
from worker import keyspace
from worker.delivery.outbox import Outbox
from worker.delivery.publish import Publisher
from worker.delivery.taskmessage import TaskMessageBuilder
from worker.events import Event
from worker.providers import normalize
from worker.settings import Settings

pytestmark = pytest.mark.integration


def sample(name: str) -> Event:
    return normalize("ims", (SAMPLES_DIR / "ims" / f"{name}.json").read_bytes())[0]


def publish(redis_url: str, events: list[Event], visibility_timeout: int = 60) -> None:
    publisher = Publisher(Settings(broker_url=redis_url, broker_visibility_timeout=visibility_timeout))
    try:
        publisher.publish(events)
    finally:
        publisher.close()


def test_publish_keeps_a_copy_until_the_task_finishes(redis_url: str) -> None:
    events = [sample("FileUploadComplete"), sample("ProduceMediaComplete")]
    publish(redis_url, events)
    client = redis.Redis.from_url(redis_url)
    assert client.hlen(keyspace.OUTBOX) == 2 and client.zcard(keyspace.OUTBOX_DUE) == 2
    with running_worker({"IMS_WORKER_BROKER_URL": redis_url, "IMS_WORKER_HANDLER_MODULES": RECORDER}):
        wait_until(lambda: client.hlen(keyspace.OUTBOX) == 0, timeout=20)
    assert client.zcard(keyspace.OUTBOX_DUE) == 0
    assert [client.get(runs_key("record", e.id)) for e in events] == [b"1", b"1"]
    client.close()


def test_a_message_lost_between_brpop_and_unacked_is_enqueued_again(redis_url: str) -> None:
    event = sample("FileUploadComplete")
    publish(redis_url, [event], visibility_timeout=3)
    client = redis.Redis.from_url(redis_url)
    assert client.rpop("ims") is not None  # what a worker's BRPOP did just before Redis went away
    assert client.llen("ims") == 0 and client.hlen("unacked") == 0
    env = {
        "IMS_WORKER_BROKER_URL": redis_url,
        "IMS_WORKER_HANDLER_MODULES": RECORDER,
        "IMS_WORKER_BROKER_VISIBILITY_TIMEOUT": "3",
    }
    with running_worker(env) as worker:
        wait_until(lambda: client.get(runs_key("record", event.id)) == b"1", timeout=30)
        wait_until(lambda: client.hlen(keyspace.OUTBOX) == 0, timeout=10)
    assert "outbox.reenqueued" in worker.output()
    assert client.get(runs_key("record", event.id)) == b"1"
    client.close()


def only_task_id(client: redis.Redis) -> str:
    (raw_task_id,) = client.hkeys(keyspace.OUTBOX)
    return raw_task_id.decode() if isinstance(raw_task_id, bytes) else str(raw_task_id)


def test_sweep_copies_only_what_is_due_and_nowhere_else(redis_url: str) -> None:
    publish(redis_url, [sample("FileUploadComplete")])
    client = redis.Redis.from_url(redis_url)
    outbox = Outbox(client, deadline_seconds=3600, grace_seconds=0)
    task_id = only_task_id(client)
    client.zadd(keyspace.OUTBOX_DUE, {task_id: 0})
    assert outbox.sweep() == 0  # due, but still waiting in its queue: a backlog, not a loss
    assert client.llen("ims") == 1
    assert client.zscore(keyspace.OUTBOX_DUE, task_id) == 0  # a queued copy keeps its place in the order
    message = client.rpop("ims")
    assert isinstance(message, bytes)
    tag = json.loads(message)["properties"]["delivery_tag"]
    client.hset("unacked", tag, "held by a worker")
    assert outbox.sweep() == 0  # its own delivery is held: kombu restores it if that worker dies
    client.delete("unacked")
    client.set(keyspace.held(task_id), "another-delivery", px=5000)
    client.hset("unacked", "another-delivery", "a retry of the task")
    assert outbox.sweep() == 0  # kombu holds the task under another delivery (a retry)
    client.delete("unacked")
    assert outbox.sweep() == 1  # that delivery was acked or restored: the key alone does not hold it
    client.rpop("ims")
    client.delete(keyspace.held(task_id))
    assert outbox.sweep() == 1  # held by nobody, queued nowhere: lost
    assert client.lrange("ims", 0, -1) == [message]
    assert outbox.sweep() == 0  # waiting in its queue again
    assert client.zscore(keyspace.OUTBOX_DUE, task_id) == 0  # deadlines are never moved by the sweep
    client.zadd(keyspace.OUTBOX_DUE, {task_id: time.time() * 1000 + 60_000})
    client.delete("ims")
    assert outbox.sweep() == 0  # not due yet
    client.close()


def test_a_copy_found_nowhere_is_re_enqueued_only_if_still_nowhere_after_the_grace(redis_url: str) -> None:
    """A delivery taken since its holder's last heartbeat is not recorded yet: one look is not enough."""
    publish(redis_url, [sample("FileUploadComplete")])
    client = redis.Redis.from_url(redis_url)
    outbox = Outbox(client, deadline_seconds=3600, grace_seconds=0.5)
    task_id = only_task_id(client)
    client.zadd(keyspace.OUTBOX_DUE, {task_id: 0})
    message = client.rpop("ims")
    assert outbox.sweep() == 0  # nowhere, for the first time
    time.sleep(0.6)
    assert outbox.sweep() == 1  # still nowhere after the grace
    assert client.lrange("ims", 0, -1) == [message]
    client.close()


def test_sweep_decides_with_a_deep_backlog_from_the_tail_alone(redis_url: str) -> None:
    """Overdue copies are the oldest messages: a copy older than everything at the tail was taken and lost;
    one younger than the tail waits behind it. Neither needs a scan of the queue."""
    events = [
        Event.model_validate({**sample("FileUploadComplete").model_dump(mode="json"), "id": f"evt-{i}"})
        for i in range(40)
    ]
    publish(redis_url, events)
    client = redis.Redis.from_url(redis_url)
    outbox = Outbox(client, deadline_seconds=3600, grace_seconds=0, window=8)
    ids = [json.loads(m)["headers"]["id"] for m in client.lrange("ims", 0, -1)][::-1]  # oldest first
    for age, task_id in enumerate(ids):  # enqueue order, 10 s apart (the clock margin is 5 s)
        client.zadd(keyspace.OUTBOX_DUE, {task_id: 1_000_000 + 10_000 * age})
    taken = client.rpop("ims")  # the oldest, taken by a BRPOP whose reply was lost
    assert isinstance(taken, bytes) and json.loads(taken)["headers"]["id"] == ids[0]
    assert outbox.sweep() == 1  # ids[20] is beyond the 8-message window, but younger than it: queued
    assert client.llen("ims") == 40 and client.lindex("ims", -1) == taken  # back at the tail, next in line
    assert outbox.calls == 1
    for task_id in ids[:30]:
        client.rpop("ims")  # taken and finished
        client.hdel(keyspace.OUTBOX, task_id)
    client.zadd(keyspace.OUTBOX_DUE, {ids[0]: 0})
    assert outbox.sweep() == 0  # the queue is within the window now and holds the rest
    assert client.zcard(keyspace.OUTBOX_DUE) == 10
    client.close()


def test_sweep_pages_through_many_overdue_copies_in_bounded_calls(redis_url: str) -> None:
    events = [
        Event.model_validate({**sample("FileUploadComplete").model_dump(mode="json"), "id": f"evt-{i}"})
        for i in range(250)
    ]
    publish(redis_url, events)
    client = redis.Redis.from_url(redis_url)
    ids = [json.loads(m)["headers"]["id"] for m in client.lrange("ims", 0, -1)][::-1]  # oldest first
    for position, task_id in enumerate(ids):  # five publish batches of 50, 10 s apart, one deadline each
        client.zadd(keyspace.OUTBOX_DUE, {task_id: 1_000_000 + 10_000 * (position // 50)})
    lost = [str(client.rpop("ims")) for _ in range(50)]  # the whole oldest batch
    outbox = Outbox(client, deadline_seconds=3600, grace_seconds=0, window=16)
    assert outbox.sweep() == 50
    # 50 lost leave the overdue range, 50 + 100 + 50 queued ones stay and are skipped by the cursor.
    assert outbox.calls == 3
    assert sorted(str(m) for m in client.lrange("ims", -50, -1)) == sorted(lost)
    client.close()


def test_a_dead_lettered_event_leaves_no_copy(redis_url: str) -> None:
    event = sample("FileUploadComplete")
    client = redis.Redis.from_url(redis_url)
    client.set(f"test:permanent:{event.id}", 1)
    publish(redis_url, [event])
    with running_worker({"IMS_WORKER_BROKER_URL": redis_url, "IMS_WORKER_HANDLER_MODULES": RECORDER}):
        wait_until(lambda: client.xlen("ims-worker:deadletters") == 1, timeout=20)
        wait_until(lambda: client.hlen(keyspace.OUTBOX) == 0, timeout=10)
    client.close()


def test_a_message_whose_event_already_reached_its_outcome_is_skipped_and_said(redis_url: str) -> None:
    """The record goes with the event's outcome: a later delivery of the same task (kombu restoring it after
    its worker died between the outcome and the ack) finds none, runs nothing and says so."""
    event = sample("FileUploadComplete")
    publish(redis_url, [event])
    client = redis.Redis.from_url(redis_url)
    client.hdel(keyspace.OUTBOX, only_task_id(client))
    env = {"IMS_WORKER_BROKER_URL": redis_url, "IMS_WORKER_HANDLER_MODULES": RECORDER}
    with running_worker(env) as worker:
        wait_until(lambda: "task.already_finished" in worker.output(), timeout=20)
        wait_until(lambda: client.llen("ims") == 0 and client.hlen("unacked") == 0, timeout=10)
    (line,) = [x for x in worker.output().splitlines() if "task.already_finished" in x]
    assert f"event_id={event.id}" in line and "warning" in line
    assert client.get(runs_key("record", event.id)) is None
    client.close()


def test_a_record_kept_by_an_earlier_release_is_re_enqueued_as_it_is(redis_url: str) -> None:
    """Releases before 2026-11-26 kept the whole message (its event inside) in the record."""
    event = sample("FileUploadComplete")
    message = TaskMessageBuilder().build(event, "ims")
    client = redis.Redis.from_url(redis_url)
    client.hset(keyspace.OUTBOX, message.task_id, b"ims\n" + message.payload)
    client.zadd(keyspace.OUTBOX_DUE, {message.task_id: 0})
    outbox = Outbox(client, deadline_seconds=3600, grace_seconds=0)
    assert outbox.sweep() == 1
    assert client.lrange("ims", 0, -1) == [message.payload]
    with running_worker({"IMS_WORKER_BROKER_URL": redis_url, "IMS_WORKER_HANDLER_MODULES": RECORDER}):
        wait_until(lambda: client.get(runs_key("record", event.id)) == b"1", timeout=20)
        wait_until(lambda: client.hlen(keyspace.OUTBOX) == 0, timeout=10)
    client.close()
