"""The dead-letter stream and redrive, against a real Redis."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from tests.conftest import SAMPLES_DIR
from worker import keyspace
from worker.delivery.deadletter import STREAM_KEY, DeadLetterFilter, DeadLetterStore
from worker.delivery.publish import Publisher
from worker.delivery.redrive import CannotRedrive, rebuild_events, redrive
from worker.events import Event, Transport
from worker.providers import normalize
from worker.settings import Settings

pytestmark = pytest.mark.integration


def ims_event(name: str = "ProduceMediaComplete") -> Event:
    (event,) = normalize("ims", (SAMPLES_DIR / "ims" / f"{name}.json").read_bytes())
    return event


def add(store: DeadLetterStore, **fields: Any) -> str:
    entry_id = store.add(**fields)
    assert entry_id is not None
    return entry_id


@pytest.fixture
def store(redis_url: str) -> DeadLetterStore:
    return DeadLetterStore(redis_url)


def test_add_and_get_keep_everything(store: DeadLetterStore) -> None:
    event = ims_event()
    entry_id = add(
        store,
        raw=event.raw,
        source=event.source,
        reason="retries exhausted",
        error="RuntimeError: boom",
        attempts=5,
        event=event,
        handlers=["a:b", "c:d"],
    )
    entry = store.get(entry_id)
    assert entry is not None
    assert entry.event_type == event.type and entry.event_id == event.id and entry.source == "ims"
    assert entry.reason == "retries exhausted" and entry.error == "RuntimeError: boom" and entry.attempts == 5
    assert entry.handlers == ("a:b", "c:d")
    assert json.loads(entry.raw) == event.raw
    assert entry.transport == {"kind": "http"}
    assert entry.received_at == event.received_at.isoformat()
    assert abs(entry.dead_lettered_at - datetime.now(UTC)) < timedelta(seconds=5)
    assert Event.model_validate_json(entry.event_json or "") == event
    shown = entry.to_dict()
    assert shown["event"]["id"] == event.id and shown["type"] == event.type


def test_undecodable_body_is_kept_byte_for_byte(store: DeadLetterStore) -> None:
    body = b"\xff\xfe not json"
    transport = Transport(kind="mns", queue="ims-events", message_id="M1", dequeue_count=3)
    entry_id = add(store, raw=body, source="ims", reason="undecodable body", transport=transport, attempts=3)
    entry = store.get(entry_id)
    assert entry is not None
    assert entry.raw == body
    assert entry.event_type is None and entry.event_json is None
    assert entry.transport == {"kind": "mns", "queue": "ims-events", "message_id": "M1", "dequeue_count": 3}
    assert entry.to_dict()["raw"] == repr(body)


def test_filters(store: DeadLetterStore) -> None:
    add(store, raw="{}", source="ims", reason="retries exhausted", event_type="ims.FileUploadComplete")
    add(store, raw="{}", source="rtc", reason="permanent failure", event_type="rtc.UserEvent")
    time.sleep(0.01)
    middle = datetime.now(UTC)
    time.sleep(0.01)
    add(store, raw="{}", source="ims", reason="undecodable body")
    assert store.count() == 3
    assert len(store.list(DeadLetterFilter(source="ims"))) == 2
    assert [e.source for e in store.list(DeadLetterFilter(event_type="rtc.*"))] == ["rtc"]
    assert [e.reason for e in store.list(DeadLetterFilter(reason="EXHAUSTED"))] == ["retries exhausted"]
    assert [e.reason for e in store.list(DeadLetterFilter(since=middle))] == ["undecodable body"]
    assert len(store.list(DeadLetterFilter(until=middle))) == 2
    assert store.count(DeadLetterFilter(source="tencent")) == 0
    assert len(store.list(limit=2)) == 2


def test_paging_through_a_long_stream(store: DeadLetterStore) -> None:
    for i in range(1203):
        add(store, raw=str(i), source="ims", reason="x")
    assert [int(e.raw) for e in store.iter()] == list(range(1203))


def test_get_unknown_or_malformed_id(store: DeadLetterStore) -> None:
    assert store.get("1-0") is None
    assert store.get("not-an-id") is None


def test_delete(store: DeadLetterStore) -> None:
    first = add(store, raw="{}", source="ims", reason="x")
    add(store, raw="{}", source="ims", reason="y")
    assert store.delete([first]) == 1
    assert [e.reason for e in store.list()] == ["y"]
    assert store.delete([]) == 0


def test_rebuild_from_stored_event_or_raw_body(store: DeadLetterStore) -> None:
    event = ims_event()
    with_event = store.get(add(store, raw=event.raw, source="ims", reason="x", event=event))
    assert with_event is not None and rebuild_events(with_event) == [event]

    rtc_raw = (SAMPLES_DIR / "rtc" / "eventsub.json").read_bytes()
    second = normalize("rtc", rtc_raw)[1]
    raw_only = store.get(add(store, raw=rtc_raw, source="rtc", reason="x", event_id=second.id))
    assert raw_only is not None
    assert [e.id for e in rebuild_events(raw_only)] == [second.id]

    garbage = store.get(add(store, raw=b"\x00garbage", source="ims", reason="undecodable body"))
    assert garbage is not None
    with pytest.raises(CannotRedrive, match="no event can be rebuilt"):
        rebuild_events(garbage)


def test_redrive_republishes_and_removes_only_what_it_could(redis_url: str, store: DeadLetterStore) -> None:
    event = ims_event()
    publisher = Publisher(Settings(broker_url=redis_url))
    publisher.publish([event])  # enqueued once already: its dedupe marker is set
    good = add(store, raw=event.raw, source="ims", reason="retries exhausted", event=event)
    bad = add(store, raw=b"not json", source="ims", reason="undecodable body")
    outcomes = redrive(store, publisher, store.list())
    publisher.close()
    assert [(o.entry.id, o.ok) for o in outcomes] == [(good, True), (bad, False)]
    assert "republished 1 (ims.ProduceMediaComplete)" in outcomes[0].message
    assert "undecodable body" in outcomes[1].message
    assert [e.id for e in store.list()] == [bad]
    client = redis.Redis.from_url(redis_url)
    assert client.llen("ims") == 2  # the original and the redrive, despite the dedupe marker
    assert client.exists(keyspace.dedupe(event.id))
    assert client.exists(STREAM_KEY)
    client.close()


def test_once_key_adds_an_entry_only_once(store: DeadLetterStore) -> None:
    # A poison MNS message whose delete failed comes back; a task redelivered after a lost worker runs again.
    first = store.add(raw="garbage", source="ims", reason="invalid-payload", once_key="mns:q:msg-1")
    again = store.add(raw="garbage", source="ims", reason="invalid-payload", once_key="mns:q:msg-1")
    other = store.add(raw="garbage", source="ims", reason="invalid-payload", once_key="mns:q:msg-2")
    assert first is not None and other is not None and again is None
    assert [entry.id for entry in store.list()] == [first, other]
