"""The whole processing half, for real: publish -> Redis (or RabbitMQ) -> `celery worker` -> handlers.

Handlers come from ``tests.plugins.recorder``, loaded by the worker through IMS_WORKER_HANDLER_MODULES; they
count their runs in Redis and misbehave when a flag for the event id is set (see that module).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import redis

from tests.celery_worker import RECORDER, running_worker, wait_until
from tests.conftest import SAMPLES_DIR
from tests.servers import RedisServer
from worker import keyspace
from worker.app import create_app
from worker.cli import main
from worker.delivery.deadletter import DeadLetterStore
from worker.delivery.publish import Publisher
from worker.events import Event, model_for
from worker.journal.reader import JournalReader
from worker.providers import normalize, queue_for
from worker.settings import Settings

pytestmark = pytest.mark.integration

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"
FRAGILE = "tests.plugins.recorder:fragile"
SLOW = "tests.plugins.recorder:slow"
FLAKY = "tests.plugins.recorder:flaky"


def load(source_dir: str, name: str, source: str) -> list[Event]:
    return normalize(source, (SAMPLES_DIR / source_dir / f"{name}.json").read_bytes())


def one_of_each_source() -> list[Event]:
    return [
        *load("ims", "FileUploadComplete", "ims"),
        *load("live-caster", "OperateCallback", "live.caster"),
        *load("live-record", "file_created", "live.record"),
        *load("rtc", "eventsub", "rtc"),  # two events: a user event and a channel event
        *load("tencent-css", "TaskExit", "tencent"),
        *normalize("tencent", b'{"event_type": 999, "callback_event": "Mystery", "appid": 1}'),
    ]


def base_env(redis_url: str, **extra: str) -> dict[str, str]:
    return {
        "IMS_WORKER_BROKER_URL": redis_url,
        "IMS_WORKER_HANDLER_MODULES": RECORDER,
        "IMS_WORKER_TASK_MAX_ATTEMPTS": "3",
        "IMS_WORKER_RETRY_BACKOFF_SECONDS": "0.05",
        "IMS_WORKER_RETRY_BACKOFF_MAX_SECONDS": "0.2",
        **extra,
    }


@dataclass
class Probe:
    """Reads what the recorder plugin wrote."""

    client: redis.Redis

    def runs(self, handler: str, event: Event) -> int:
        return int(self.client.get(f"test:runs:{handler}:{event.id}") or 0)

    def started(self, event: Event) -> int:
        """How many times the ``slow`` handler began its sleep for ``event``."""
        return int(self.client.get(f"test:started:{event.id}") or 0)

    def done(self, handler_name: str, event: Event) -> bool:
        return bool(self.client.exists(keyspace.done(event.id, handler_name)))

    def flag(self, kind: str, event: Event, value: str | int = 1) -> None:
        self.client.set(f"test:{kind}:{event.id}", value)

    def unflag(self, kind: str, event: Event) -> None:
        self.client.delete(f"test:{kind}:{event.id}")

    def idle(self, queues: tuple[str, ...] = ("ims", "live", "rtc", "tencent", "unknown")) -> bool:
        """No message waiting in a queue and none delivered but unacknowledged (Redis broker)."""
        return not any(self.client.llen(q) for q in queues) and not self.client.hlen("unacked")


@pytest.fixture
def probe(redis_url: str) -> Iterator[Probe]:
    client = redis.Redis.from_url(redis_url)
    yield Probe(client)
    client.close()


@pytest.fixture
def deadletters(redis_url: str) -> Iterator[DeadLetterStore]:
    store = DeadLetterStore(redis_url)
    yield store
    store.close()


def rabbitmq_or_skip() -> None:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
    except OSError as exc:
        pytest.skip(f"RabbitMQ not reachable at 127.0.0.1:5672 ({exc}); the amqp:// pipeline test needs it")


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_env(request: pytest.FixtureRequest, redis_url: str) -> Iterator[dict[str, str]]:
    """Worker settings for each broker. RabbitMQ gets queue names unique to this run (it is shared)."""
    if request.param == "redis":
        yield base_env(redis_url)
        return
    rabbitmq_or_skip()
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    routes = {s: f"{prefix}-{s}" for s in ("ims", "live.caster", "live.record", "rtc", "tencent", "unknown")}
    routes["live.caster"] = routes["live.record"] = f"{prefix}-live"
    env = base_env(redis_url, IMS_WORKER_REDIS_URL=redis_url)
    env["IMS_WORKER_BROKER_URL"] = RABBITMQ_URL
    env["IMS_WORKER_QUEUE_ROUTES"] = json.dumps(routes)
    yield env
    from kombu.connection import Connection  # noqa: PLC0415 - only for cleaning up RabbitMQ

    connection: Any = Connection(RABBITMQ_URL)  # type: ignore[no-untyped-call]
    with connection:
        for queue in set(routes.values()):
            with contextlib.suppress(Exception):
                connection.default_channel.queue_delete(queue)


def settings_from(env: dict[str, str]) -> Settings:
    return Settings(
        broker_url=env["IMS_WORKER_BROKER_URL"],
        redis_url=env.get("IMS_WORKER_REDIS_URL"),
        queue_routes=json.loads(env.get("IMS_WORKER_QUEUE_ROUTES", "{}")),
    )


def test_each_source_runs_its_handlers_exactly_once(broker_env: dict[str, str], probe: Probe) -> None:
    settings = settings_from(broker_env)
    events = one_of_each_source()
    assert {e.source for e in events} == {"ims", "live.caster", "live.record", "rtc", "tencent"}
    assert "unknown.tencent" in {e.type for e in events}
    queues = sorted({queue_for(settings, s) for s in ("ims", "live.caster", "rtc", "tencent", "unknown")})
    with running_worker(broker_env, queues=queues, concurrency=2) as worker:
        publisher = Publisher(settings)
        first = publisher.publish(events)
        again = publisher.publish(events)  # a redelivery upstream: absorbed by the dedupe marker
        publisher.close()
        assert all(r.enqueued for r in first) and not any(r.enqueued for r in again)
        wait_until(lambda: all(probe.done(SLOW, e) for e in events), timeout=20)
        wait_until(probe.idle, timeout=10)

        for event in events:
            for handler in ("record", "flaky", "fragile", "slow"):
                assert probe.runs(handler, event) == 1, (handler, event.type)
            seen = cast(dict[bytes, bytes], probe.client.hgetall(f"test:seen:{event.id}"))
            model = model_for(event.type)
            assert seen[b"event_class"] == b"Event"
            assert seen[b"data_class"].decode() == f"{model.__module__}.{model.__qualname__}"
            assert seen[b"type"].decode() == event.type
        # The journal, whichever the broker (issue 22: over amqp:// nothing was journaled at receipt).
        histories = JournalReader(probe.client).histories([e.id for e in events])
        assert len(histories) == len(events)
        for history in histories:
            kinds = [step.kind for step in history.steps]
            assert kinds[:2] == ["received", "enqueued"] and "duplicate" in kinds, kinds
            assert "handled" in kinds, kinds
        output = worker.output()
    assert "handler.ims" in output and "handler.unknown" in output and "handler.rtc" in output


def test_retry_until_success_runs_only_the_failing_handler_again(redis_url: str, probe: Probe) -> None:
    (event,) = load("ims", "ProduceMediaComplete", "ims")
    probe.flag("fail", event, 2)
    with running_worker(base_env(redis_url)):
        Publisher(Settings(broker_url=redis_url)).publish([event])
        wait_until(lambda: probe.done(FLAKY, event), timeout=15)
        wait_until(probe.idle)
    assert probe.runs("flaky", event) == 3
    assert [probe.runs(h, event) for h in ("record", "fragile", "slow")] == [1, 1, 1]


def test_permanent_failure_and_bad_messages_go_straight_to_dead_letters(
    redis_url: str, probe: Probe, deadletters: DeadLetterStore
) -> None:
    (event,) = load("ims", "SnapshotComplete", "ims")
    probe.flag("permanent", event)
    app = create_app(Settings(broker_url=redis_url))
    # A message whose outbox record holds no valid event (the message refers to its event by id).
    (other,) = load("ims", "FileUploadComplete", "ims")
    Publisher(Settings(broker_url=redis_url)).publish([other])
    store = redis.Redis.from_url(redis_url)
    (task_id,) = store.hkeys(keyspace.OUTBOX)
    corrupt = b'{"type":"ims.FileUploadComplete","id":"' + other.id.encode() + b'","source":7}'
    store.hset(keyspace.OUTBOX, task_id, b"ims\n" + corrupt)
    store.close()
    with running_worker(base_env(redis_url)):
        Publisher(Settings(broker_url=redis_url)).publish([event])
        app.send_task("ims.SnapshotComplete", args=[{"not": "an event"}], queue="ims")
        app.send_task("rtc.UserEvent", args=[], queue="rtc")
        wait_until(lambda: deadletters.count() == 4, timeout=15)
        wait_until(probe.idle)
    app.close()
    by_reason = {e.reason: e for e in deadletters.list()}
    permanent = by_reason["permanent failure"]
    assert permanent.event_id == event.id and permanent.attempts == 1 and permanent.handlers == (FRAGILE,)
    assert "worker.errors.Permanent: this event can never be handled" in (permanent.error or "")
    assert probe.runs("fragile", event) == 1 and probe.runs("record", event) == 1
    bad = [e for e in deadletters.list() if e.reason == "invalid task message"]
    assert sorted(e.event_type or "" for e in bad) == [
        "ims.FileUploadComplete", "ims.SnapshotComplete", "rtc.UserEvent"
    ]  # fmt: skip
    (unreadable,) = [e for e in bad if e.event_type == "ims.FileUploadComplete"]
    assert unreadable.raw == corrupt  # what the record held, kept for inspection
    assert probe.runs("record", other) == 0
    assert any("event does not validate" in (e.error or "") for e in bad)
    assert any("expected one argument" in (e.error or "") for e in bad)


def test_exhausted_retries_dead_letter_then_redrive_after_the_fix(
    redis_url: str, probe: Probe, deadletters: DeadLetterStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    (event,) = load("live-caster", "RuntimeErrorCallback", "live.caster")
    probe.flag("broken", event)
    monkeypatch.setenv("IMS_WORKER_BROKER_URL", redis_url)
    # Five attempts: beyond Celery's own default of three retries, which the wrapper must not be bound by.
    with running_worker(base_env(redis_url, IMS_WORKER_TASK_MAX_ATTEMPTS="5")):
        Publisher(Settings(broker_url=redis_url)).publish([event])
        wait_until(lambda: deadletters.count() == 1, timeout=15)
        (entry,) = deadletters.list()
        assert entry.reason == "retries exhausted" and entry.attempts == 5
        assert entry.handlers == (FRAGILE,) and entry.event_id == event.id and entry.source == "live.caster"
        assert "RuntimeError: fragile is broken for redis://[REDACTED]@example.com/0" in (entry.error or "")
        assert "hunter2" not in (entry.error or "")
        assert probe.runs("fragile", event) == 5 and probe.runs("record", event) == 1

        assert main(["dlq", "redrive", entry.id]) == 0  # still broken: back in the store after 5 more tries
        wait_until(lambda: deadletters.count() == 1 and probe.runs("fragile", event) == 10, timeout=15)

        probe.unflag("broken", event)  # the fix is deployed
        assert main(["dlq", "redrive", "--yes"]) == 0
        wait_until(lambda: probe.done(FRAGILE, event), timeout=15)
        wait_until(probe.idle)
    assert deadletters.count() == 0, [(e.reason, e.error, e.attempts) for e in deadletters.list()]
    assert probe.runs("fragile", event) == 11
    assert [probe.runs(h, event) for h in ("record", "flaky", "slow")] == [1, 1, 1]


def test_kill_9_of_the_worker_child_redelivers_and_completes(
    redis_url: str, probe: Probe, deadletters: DeadLetterStore
) -> None:
    (event,) = load("tencent-css", "VodSourceFileFinish", "tencent")
    probe.flag("slow", event, 60)
    with running_worker(base_env(redis_url)) as worker:
        Publisher(Settings(broker_url=redis_url)).publish([event])
        wait_until(lambda: probe.started(event) == 1, timeout=15)
        probe.unflag("slow", event)  # the next run is quick; the running one sleeps on until killed
        worker.kill_child()
        wait_until(lambda: probe.done(SLOW, event), timeout=20)
        wait_until(probe.idle)
        assert worker.alive()
    assert probe.runs("slow", event) == 2
    # Handlers that finished before the kill are not run again on the redelivery.
    assert [probe.runs(h, event) for h in ("record", "flaky", "fragile")] == [1, 1, 1]
    assert deadletters.count() == 0, [(e.reason, e.error, e.attempts) for e in deadletters.list()]


def test_a_message_that_keeps_killing_workers_is_dead_lettered(
    redis_url: str, probe: Probe, deadletters: DeadLetterStore
) -> None:
    (event,) = load("ims", "TranscodeComplete", "ims")
    probe.flag("slow", event, 60)
    with running_worker(base_env(redis_url, IMS_WORKER_MAX_REDELIVERIES="1")) as worker:
        Publisher(Settings(broker_url=redis_url)).publish([event])
        wait_until(lambda: probe.started(event) == 1, timeout=15)
        worker.kill_child()  # redelivery 1: within the limit, runs again
        wait_until(lambda: probe.started(event) == 2, timeout=15)
        worker.kill_child()  # redelivery 2: over the limit
        wait_until(lambda: deadletters.count() == 1, timeout=15)
        wait_until(probe.idle)
    (entry,) = deadletters.list()
    assert entry.reason == "redelivery limit" and entry.handlers == (SLOW,)
    assert "redelivered 2 times" in (entry.error or "")
    assert probe.runs("slow", event) == 2 and probe.runs("record", event) == 1


def test_whole_worker_killed_message_restored_after_visibility_timeout(redis_url: str, probe: Probe) -> None:
    (event,) = load("live-record", "record_started", "live.record")
    probe.flag("slow", event, 60)
    env = base_env(redis_url, IMS_WORKER_BROKER_VISIBILITY_TIMEOUT="2")
    with running_worker(env) as first:
        Publisher(Settings(broker_url=redis_url)).publish([event])
        wait_until(lambda: probe.started(event) == 1, timeout=15)
        probe.unflag("slow", event)
        first.kill()  # main process and pool at once: nothing is acked, rejected or restored
    assert probe.client.hlen("unacked") == 1
    with running_worker(env):
        wait_until(lambda: probe.done(SLOW, event), timeout=20)
        wait_until(probe.idle)
    assert probe.runs("slow", event) == 2 and probe.runs("record", event) == 1


def test_task_events_reach_an_event_receiver(redis_url: str) -> None:
    """What Flower consumes: task-received/started/succeeded events named after the event type."""
    app = create_app(Settings(broker_url=redis_url))
    seen: list[dict[str, Any]] = []
    (event,) = load("ims", "MediaConvertComplete", "ims")
    with running_worker(base_env(redis_url)), app.connection_for_read() as connection:
        receiver = app.events.Receiver(connection, handlers={"*": seen.append})
        thread = threading.Thread(
            target=receiver.capture, kwargs={"limit": None, "timeout": None}, daemon=True
        )
        thread.start()
        try:
            wait_until(lambda: any(e["type"] == "worker-heartbeat" for e in seen), timeout=15)
            (result,) = Publisher(Settings(broker_url=redis_url)).publish([event])
            wait_until(lambda: any(e["type"] == "task-succeeded" for e in seen), timeout=15)
        finally:
            receiver.should_stop = True
            thread.join(timeout=5)
    app.close()
    tasks = [e for e in seen if e["type"].startswith("task-")]
    received = next(e for e in tasks if e["type"] == "task-received")
    assert received["name"] == "ims.MediaConvertComplete" and event.id in received["args"]
    assert {e["type"] for e in tasks} >= {"task-received", "task-started", "task-succeeded"}
    assert len({e["uuid"] for e in tasks}) == 1
    assert result.enqueued


def test_a_broken_plugin_stops_the_worker_at_start(redis_url: str) -> None:
    env = base_env(redis_url, IMS_WORKER_HANDLER_MODULES="tests.plugins.broken")
    with running_worker(env, wait_ready=False) as worker:
        worker.process.wait(timeout=30)
        assert worker.process.returncode != 0
        output = worker.output()
    assert "cannot load handlers" in output and "ims.NoSuchEvent" in output


def test_two_tasks_for_one_event_never_run_a_handler_at_the_same_time(
    redis_url: str, probe: Probe, deadletters: DeadLetterStore
) -> None:
    (event,) = load("ims", "SmartJobComplete", "ims")
    probe.flag("slow", event, "1.5")
    with running_worker(base_env(redis_url), concurrency=2) as worker:
        publisher = Publisher(Settings(broker_url=redis_url))
        publisher.publish([event])
        wait_until(lambda: probe.started(event) == 1, timeout=15)
        (again,) = publisher.publish([event], bypass_dedupe=True)  # e.g. a redrive while the first still runs
        publisher.close()
        assert again.enqueued
        wait_until(lambda: probe.done(SLOW, event), timeout=15)
        wait_until(probe.idle, timeout=15)
        output = worker.output()
    assert "claimed by another task" in output
    assert [probe.runs(h, event) for h in ("record", "flaky", "fragile", "slow")] == [1, 1, 1, 1]
    assert deadletters.count() == 0, [(e.reason, e.error, e.attempts) for e in deadletters.list()]


def test_ledger_redis_outage_delays_but_loses_nothing(redis_url: str, probe: Probe, tmp_path: Path) -> None:
    markers = RedisServer(workdir=tmp_path / "markers")
    markers.start()
    try:
        settings = Settings(broker_url=redis_url, redis_url=markers.url)
        (event,) = load("rtc", "eventsub", "rtc")[:1]
        Publisher(settings).publish([event])  # markers on their own server: the two-step path
        markers.stop()
        with running_worker(base_env(redis_url, IMS_WORKER_REDIS_URL=markers.url)) as worker:
            wait_until(lambda: "Redis unavailable" in worker.output(), timeout=15)
            markers.start()
            marker_probe = Probe(redis.Redis.from_url(markers.url))
            wait_until(lambda: marker_probe.done(SLOW, event), timeout=15)
            wait_until(probe.idle, timeout=15)
        assert [marker_probe.runs(h, event) for h in ("record", "flaky", "fragile", "slow")] == [1, 1, 1, 1]
        marker_probe.client.close()
    finally:
        markers.stop()
