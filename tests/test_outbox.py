"""The outbox closes kombu's BRPOP window: a task message taken from the queue and then lost (Redis stopped
before the worker recorded it as unacked) is enqueued again by the sweeper, and handled once."""

from __future__ import annotations

import json

import pytest
import redis

from tests.celery_worker import RECORDER, running_worker, wait_until
from tests.conftest import SAMPLES_DIR
from tests.plugins.recorder import runs_key
from worker.dedupe import OUTBOX_DUE_KEY, OUTBOX_KEY
from worker.events import Event
from worker.outbox import Outbox
from worker.providers import normalize
from worker.publish import Publisher
from worker.settings import Settings

pytestmark = pytest.mark.integration


def sample(name: str) -> Event:
    return normalize("ims", (SAMPLES_DIR / "ims" / f"{name}.json").read_bytes())[0]


def publish(redis_url: str, events: list[Event], visibility_timeout: int | None = None) -> None:
    publisher = Publisher(Settings(broker_url=redis_url, broker_visibility_timeout=visibility_timeout))
    try:
        publisher.publish(events)
    finally:
        publisher.close()


def test_publish_keeps_a_copy_until_the_task_finishes(redis_url: str) -> None:
    events = [sample("FileUploadComplete"), sample("ProduceMediaComplete")]
    publish(redis_url, events)
    client = redis.Redis.from_url(redis_url)
    assert client.hlen(OUTBOX_KEY) == 2 and client.zcard(OUTBOX_DUE_KEY) == 2
    with running_worker({"IMS_WORKER_BROKER_URL": redis_url, "IMS_WORKER_HANDLER_MODULES": RECORDER}):
        wait_until(lambda: client.hlen(OUTBOX_KEY) == 0, timeout=20)
    assert client.zcard(OUTBOX_DUE_KEY) == 0
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
        wait_until(lambda: client.hlen(OUTBOX_KEY) == 0, timeout=10)
    assert "outbox re-enqueued" in worker.output()
    assert client.get(runs_key("record", event.id)) == b"1"
    client.close()


def test_sweep_copies_only_what_is_due_and_nowhere_else(redis_url: str) -> None:
    publish(redis_url, [sample("FileUploadComplete")])
    client = redis.Redis.from_url(redis_url)
    outbox = Outbox(client, deadline_seconds=3600)
    (raw_task_id,) = client.hkeys(OUTBOX_KEY)
    task_id = raw_task_id.decode() if isinstance(raw_task_id, bytes) else raw_task_id
    client.zadd(OUTBOX_DUE_KEY, {task_id: 0})
    assert outbox.sweep() == 0  # due, but still waiting in its queue: a backlog, not a loss
    assert client.llen("ims") == 1
    message = client.rpop("ims")
    assert isinstance(message, bytes)
    tag = json.loads(message)["properties"]["delivery_tag"]
    client.hset("unacked", tag, "held by a worker")
    client.zadd(OUTBOX_DUE_KEY, {task_id: 0})
    assert outbox.sweep() == 0  # held by a worker: kombu restores it if that worker dies
    client.delete("unacked")
    assert outbox.sweep() == 0  # lost now, but its deadline was moved out by the last sweep
    client.zadd(OUTBOX_DUE_KEY, {task_id: 0})
    assert outbox.sweep() == 1
    assert client.llen("ims") == 1
    assert (client.zscore(OUTBOX_DUE_KEY, task_id) or 0) > 0  # the next deadline is set
    client.close()


def test_a_dead_lettered_event_leaves_no_copy(redis_url: str) -> None:
    event = sample("FileUploadComplete")
    client = redis.Redis.from_url(redis_url)
    client.set(f"test:permanent:{event.id}", 1)
    publish(redis_url, [event])
    with running_worker({"IMS_WORKER_BROKER_URL": redis_url, "IMS_WORKER_HANDLER_MODULES": RECORDER}):
        wait_until(lambda: client.xlen("ims-worker:deadletters") == 1, timeout=20)
        wait_until(lambda: client.hlen(OUTBOX_KEY) == 0, timeout=10)
    client.close()
