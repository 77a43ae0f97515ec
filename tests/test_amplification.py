"""Amplification is bounded: the fan-out bound (413 on the shim, a dead letter on the MNS path), each RTC
event storing its own item, and 503 + Retry-After while Redis is near maxmemory. Real shim, real Redis."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
import redis

from tests.celery_worker import wait_until
from tests.conftest import SAMPLES_DIR
from tests.servers import RedisServer, free_port, is_queue
from tests.shim_server import serving
from worker import keyspace
from worker.delivery.deadletter import DeadLetterStore
from worker.delivery.publish import Publisher
from worker.events import Event
from worker.mns.batch import BatchHandler
from worker.settings import Settings, load_settings
from worker.shim import ENDPOINTS, create_app, sign_request

pytestmark = pytest.mark.integration

RTC = json.loads((SAMPLES_DIR / "rtc" / "eventsub.json").read_text())
IMS = (SAMPLES_DIR / "ims" / "ProduceMediaComplete.json").read_bytes()


def rtc_message(items: int, **header: Any) -> bytes:
    user = RTC["Contents"][0]
    contents = [{**user, "UserEvent": {**user["UserEvent"], "UserId": str(n)}} for n in range(items)]
    return json.dumps(
        {**RTC, **header, "MsgId": f"msg-{items}-{time.time_ns()}", "Contents": contents}
    ).encode()


@pytest.fixture
def shim(
    redis_server: RedisServer, redis_url: str, request: pytest.FixtureRequest
) -> Iterator[tuple[httpx.Client, Settings]]:
    port = free_port()
    settings = load_settings(
        broker_url=redis_server.url,
        shim_public_url=f"http://127.0.0.1:{port}",
        rtc_app_key="rtc-key",
        ims_callback_key="ims-key",
        shim_spool_enabled=getattr(request, "param", True),
    )
    with serving(create_app(settings), port) as base, httpx.Client(base_url=base, timeout=10) as client:
        yield client, settings


def post(client: httpx.Client, settings: Settings, source: str, body: bytes) -> httpx.Response:
    headers, query, body = sign_request(source, body, settings)
    return client.post(ENDPOINTS[source], content=body, headers=headers, params=query)


def queued(store: redis.Redis) -> list[dict[str, Any]]:
    """The task messages waiting in the Celery queues."""
    return [
        json.loads(m) for key in store.scan_iter() if is_queue(store, key) for m in store.lrange(key, 0, -1)
    ]


@pytest.fixture
def store(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.config_set("maxmemory", 0)
    client.close()


def test_more_events_than_the_bound_is_413_and_nothing_is_enqueued(shim: Any, store: redis.Redis) -> None:
    client, settings = shim
    answer = post(client, settings, "rtc", rtc_message(settings.max_events_per_request + 1))
    assert answer.status_code == 413
    assert answer.json()["error"] == "too_many_events"
    assert "101 events" in answer.json()["detail"]
    assert queued(store) == []


def test_at_the_bound_each_event_stores_only_its_own_item(shim: Any, store: redis.Redis) -> None:
    client, settings = shim
    body = rtc_message(settings.max_events_per_request)
    answer = post(client, settings, "rtc", body)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["events"]) == 100
    messages = queued(store)
    assert len(messages) == 100
    users = set()
    stored = 0
    for message in messages:
        (event_id,) = json.loads(message["body"])[0]  # the message refers to its event by id
        record = cast(bytes | None, store.hget(keyspace.OUTBOX, message["headers"]["id"]))  # the event, once
        assert record is not None
        event = Event.model_validate_json(record.partition(b"\n")[2])
        assert event.id == event_id
        assert len(event.raw["Contents"]) == 1
        users.add(event.data.UserEvent.UserId)  # type: ignore[attr-defined]
        stored += len(json.dumps(message)) + len(record)
    assert users == {str(n) for n in range(100)}
    # Messages and records together: about 5x the body (each event's envelope and the message's few header
    # fields), where storing every sibling in every event (and twice, base64) made it over 250x.
    print(f"messages and records: {stored / len(body):.2f}x the body")
    assert stored < 6 * len(body)


def test_many_small_channel_events_under_the_documented_header_are_accepted(
    shim: Any, store: redis.Redis
) -> None:
    client, settings = shim
    channel = RTC["Contents"][1]
    body = json.dumps({**RTC, "MsgId": f"channels-{time.time_ns()}", "Contents": [channel] * 100}).encode()
    answer = post(client, settings, "rtc", body)
    assert answer.status_code == 200, answer.text
    assert len(queued(store)) == 100


def test_a_header_copied_into_every_event_may_not_outweigh_the_message(shim: Any, store: redis.Redis) -> None:
    client, settings = shim
    answer = post(client, settings, "rtc", rtc_message(50, Padding="x" * 4000))
    assert answer.status_code == 413
    assert "would be copied into each of its 50 events" in answer.json()["detail"]
    assert queued(store) == []


@pytest.mark.parametrize("shim", [False], indirect=True, ids=["spool-off"])
def test_near_redis_maxmemory_the_shim_answers_503_with_retry_after(shim: Any, store: redis.Redis) -> None:
    """With the spool off (with it, such requests are spooled: test_shim_spool.py)."""
    client, settings = shim
    used = int(store.info("memory")["used_memory"])
    store.config_set("maxmemory", int(used / 0.95))  # above the default 0.9 ratio, below the limit
    time.sleep(1.1)  # the guard's reading is cached for a second
    answer = post(client, settings, "ims", IMS)
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "30"
    assert answer.json()["error"] == "redis_memory_high"
    assert queued(store) == []
    store.config_set("maxmemory", 0)
    wait_until(lambda: post(client, settings, "ims", IMS).status_code == 200, timeout=5, interval=0.3)
    assert len(queued(store)) == 1


def test_on_the_mns_path_too_many_events_is_dead_lettered_with_the_reason(redis_url: str) -> None:
    # IMS messages carry one event each, so the bound is shown at 0: the wiring, not the figure.
    settings = Settings(broker_url=redis_url)
    handler = BatchHandler("q", Publisher(settings), DeadLetterStore(redis_url), 10, max_events=0)
    message = SimpleNamespace(
        message_id="m-1", dequeue_count=1, message_body=IMS.decode(), receipt_handle="h-1"
    )
    outcome = handler.handle([message])
    assert (outcome.published, outcome.dead_lettered, outcome.handles_to_delete) == (0, 1, ["h-1"])
    (entry,) = DeadLetterStore(redis_url).list()
    assert entry.reason == "too-many-events"
    assert entry.raw == IMS
