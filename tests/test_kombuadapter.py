"""One test per kombu/Celery internal the worker touches (``worker.kombuadapter``): each fails if the library
changes it. Against a real redis-server through kombu's own Redis transport. (Internal 5, the wire format, is
``tests/test_publish.py::test_message_is_what_celery_send_task_would_put``.)"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import structlog
from celery.worker.consumer import tasks as consumer_tasks
from kombu.connection import Connection
from kombu.messaging import Consumer as KombuConsumer

from worker import kombuadapter

pytestmark = pytest.mark.integration


@pytest.fixture
def channel(redis_url: str) -> Iterator[Any]:
    with Connection(redis_url) as connection:  # type: ignore[no-untyped-call]
        channel = connection.channel()
        yield channel
        channel.close()


def take(channel: Any, queue: str, task_id: str) -> Any:
    """Put one task-like message on ``queue`` and take it unacknowledged, as a worker does."""
    producer = channel.connection.client.Producer(channel)
    producer.publish({"x": 1}, routing_key=queue, headers={"id": task_id}, declare=[])
    channel.queue_declare(queue)
    message = channel.basic_get(queue, no_ack=False)
    assert message is not None
    return message


def test_held_deliveries_reads_qos_delivered_less_dirty(channel: Any) -> None:
    message = take(channel, "q1", "task-1")
    (held,) = kombuadapter.held_deliveries(channel)
    assert held == kombuadapter.Delivery(tag=message.delivery_tag, task_id="task-1")
    assert message.delivery_tag in channel.qos._delivered  # the internal itself
    message.ack()
    # Acked: listed in _dirty until the next flush, or gone from _delivered; either way no longer held.
    assert kombuadapter.held_deliveries(channel) == []


def test_rescore_goes_through_the_channels_client_and_its_index_key(channel: Any, redis_url: str) -> None:
    message = take(channel, "q2", "task-2")
    client = redis.Redis.from_url(redis_url)
    index = kombuadapter.unacked_index_key()
    assert channel.unacked_index_key == index
    delivered_at = client.zscore(index, message.delivery_tag)
    assert delivered_at is not None  # kombu indexed the delivery under the name the adapter gives
    kombuadapter.rescore(channel, [message.delivery_tag, "never-delivered"], at=time.time() + 1000)
    assert (client.zscore(index, message.delivery_tag) or 0) > delivered_at + 900
    assert client.zscore(index, "never-delivered") is None  # XX: nothing added
    with channel.conn_or_acquire() as own:
        assert isinstance(own, redis.Redis)
    client.close()


def test_unacked_key_names_are_the_channels_and_follow_its_transport_options(redis_url: str) -> None:
    with Connection(redis_url) as connection:  # type: ignore[no-untyped-call]
        assert connection.default_channel.unacked_key == kombuadapter.unacked_key() == "unacked"
        assert connection.default_channel.unacked_index_key == kombuadapter.unacked_index_key()
    options = {"unacked_key": "my-unacked", "unacked_index_key": "my-index"}
    with Connection(redis_url, transport_options=options) as connection:  # type: ignore[no-untyped-call]
        assert connection.default_channel.unacked_key == kombuadapter.unacked_key(options) == "my-unacked"
        assert connection.default_channel.unacked_index_key == kombuadapter.unacked_index_key(options)


def test_celerys_worker_consumer_keeps_its_task_consumer_on_task_consumer() -> None:
    # Celery's Tasks bootstep sets ``c.task_consumer`` (a kombu Consumer); kombu's Consumer has ``channel``.
    assert "c.task_consumer = " in inspect.getsource(consumer_tasks.Tasks.start)
    assert "channel" in inspect.signature(KombuConsumer.__init__).parameters

    class WorkerConsumer:
        task_consumer = type("TaskConsumer", (), {"channel": "the channel"})()

    assert kombuadapter.consumer_channel(WorkerConsumer()) == "the channel"
    assert kombuadapter.consumer_channel(object()) is None  # before the bootstep ran


def test_versions_outside_the_tested_ones_are_named_in_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    assert kombuadapter.untested_versions() == {}  # the installed versions are the tested ones
    assert kombuadapter.untested_versions({"celery": "5.6.9", "kombu": "5.7.2"}) == {}  # patch releases
    assert kombuadapter.untested_versions({"celery": "5.7.0", "kombu": "5.7.0"}) == {"celery": "5.7.0"}
    monkeypatch.setattr(kombuadapter, "_checked", False)
    monkeypatch.setattr(kombuadapter, "untested_versions", lambda: {"kombu": "6.0.0"})
    with structlog.testing.capture_logs() as logs:
        kombuadapter.check_versions()
        kombuadapter.check_versions()  # once per process
    assert len(logs) == 1 and logs[0]["event"] == "broker.untested_versions"
    assert logs[0]["installed"] == {"kombu": "6.0.0"} and "kombu 5.7.0" in logs[0]["tested"]
