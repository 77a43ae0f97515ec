"""The journal's bounds (time, size, per event, per key) and its off switch, on a real Redis."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import redis

from tests.conftest import SAMPLES_DIR
from worker import keyspace
from worker.delivery.publish import Publisher
from worker.events import Event
from worker.execution.ledger import HandlerLedger
from worker.journal.config import JournalConfig
from worker.journal.reader import JournalReader
from worker.journal.writer import JournalWriter
from worker.providers import normalize
from worker.settings import load_settings

pytestmark = pytest.mark.integration
MEDIA = "c321b3a0041a71eda1590674a2ce****"


def events(count: int, start: int = 0) -> list[Event]:
    payload = json.loads((SAMPLES_DIR / "ims" / "FileUploadComplete.json").read_text())
    found = []
    for seq in range(start, start + count):
        payload["TestSeq"] = seq
        found += normalize("ims", json.dumps(payload))
    return found


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


def publish(redis_url: str, batch: list[Event], size: int = 10, **settings: object) -> None:
    """Publish as the consumer does, then begin each task as a worker does (its first attempt)."""
    config = load_settings(broker_url=redis_url, **settings)
    publisher = Publisher(config)
    client = redis.Redis.from_url(redis_url)
    ledger = HandlerLedger(
        client, claim_seconds=60, done_ttl_seconds=600, outbox_deadline_seconds=600,
        journal=JournalConfig.from_settings(config),
    )  # fmt: skip
    try:
        for i in range(0, len(batch), size):
            publisher.publish(batch[i : i + size])
            for event in batch[i : i + size]:
                ledger.begin(event.id, f"task-{event.id}", ["h:a"], redelivered=False, event=event)
            time.sleep(0.002)  # events first seen in the same millisecond have no order among them
    finally:
        publisher.close()
        client.close()


def test_the_size_cap_drops_the_oldest_events_whole(redis_url: str, client: redis.Redis) -> None:
    batch = events(150)
    publish(redis_url, batch, journal_max_events=100)
    assert client.zcard(keyspace.JOURNAL_INDEX) == 100
    kept = [e for e in batch if client.exists(keyspace.journal_entries(e.id))]
    assert kept == batch[50:]
    assert not any(client.exists(keyspace.journal_payload(e.id)) for e in batch[:50])
    assert all(client.exists(keyspace.journal_payload(e.id)) for e in batch[50:])
    # The business-key index still names dropped events; readers skip what is gone.
    reader = JournalReader(client)
    assert {h.event_id for h in reader.histories(reader.resolve(MEDIA))} == {e.id for e in batch[50:]}


def test_events_older_than_the_retention_are_dropped_and_every_key_expires(
    redis_url: str, client: redis.Redis
) -> None:
    client.zadd(keyspace.JOURNAL_INDEX, {"ims:old": 1_000})  # first seen in 1970
    client.rpush(keyspace.journal_entries("ims:old"), '{"t":1000,"e":"received"}')
    client.set(keyspace.journal_payload("ims:old"), "x")
    (event,) = events(1)
    publish(redis_url, [event], journal_retention_seconds=3600, journal_payload_seconds=7200)
    assert client.zrange(keyspace.JOURNAL_INDEX, 0, -1) == [event.id.encode()]
    assert not client.exists(keyspace.journal_entries("ims:old"), keyspace.journal_payload("ims:old"))
    assert 3590 <= client.ttl(keyspace.journal_entries(event.id)) <= 3600
    assert 3590 <= client.ttl(keyspace.journal_value(MEDIA)) <= 3600
    assert (
        3590 <= client.ttl(keyspace.journal_payload(event.id)) <= 3600
    )  # never kept longer than the journal itself


def test_per_event_and_per_key_caps_keep_the_first_entry_and_the_newest_events(
    redis_url: str, client: redis.Redis
) -> None:
    batch = events(3)
    settings = {"journal_max_entries_per_event": 4, "journal_max_events_per_key": 2}
    publish(redis_url, batch, size=1, **settings)
    writer = JournalWriter(client, JournalConfig.from_settings(load_settings(**settings)))
    for attempt in range(10):
        writer.note(batch[0].id, "retried", countdown=attempt)
    steps = JournalReader(client).histories([batch[0].id])[0].steps
    assert [s.kind for s in steps] == ["received", "retried", "retried", "retried"]
    assert [s.fields["countdown"] for s in steps[1:]] == [7, 8, 9]
    assert JournalReader(client).resolve(f"MediaId={MEDIA}") == [e.id for e in batch[1:]]


def test_the_journal_can_be_turned_off(redis_url: str, client: redis.Redis) -> None:
    batch = events(5)
    publish(redis_url, batch, journal_enabled=False)
    assert client.llen("ims") == 5
    assert list(client.scan_iter("ims-worker:j:*")) == []
