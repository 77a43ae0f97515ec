"""The emulator's message operations, driven only through the real aliyun-mns-sdk."""

from __future__ import annotations

import base64
import hashlib
import json
import time

import pytest
from mns.mns_exception import MNSClientNetworkException, MNSServerException
from mns.queue import Message

from tests.mns_emulator import DEFAULT_QUEUE, InProcessEmulator, mns_emulator
from worker.devtools.mns_emulator.errors import MnsError

pytestmark = pytest.mark.integration
__all__ = ["mns_emulator"]  # the fixture, imported for pytest


def test_send_receive_delete_round_trip(mns_emulator: InProcessEmulator) -> None:
    queue = mns_emulator.queue()
    body = json.dumps({"EventType": "ProduceMediaComplete", "note": "a & b < c > d \u4e2d\u6587 \u00e9"})
    sent = queue.send_message(Message(body))
    assert sent.message_body_md5 == hashlib.md5(body.encode()).hexdigest().upper()

    received = queue.receive_message(0)
    assert received.message_body == body
    assert received.message_id == sent.message_id
    assert received.message_body_md5 == sent.message_body_md5
    assert received.dequeue_count == 1
    assert received.priority == 8
    assert received.first_dequeue_time >= received.enqueue_time > 0
    assert received.next_visible_time > received.first_dequeue_time
    assert mns_emulator.stats().inactive == 1

    queue.delete_message(received.receipt_handle)
    stats = mns_emulator.stats()
    assert (stats.active, stats.inactive, stats.deleted) == (0, 0, 1)


def test_body_with_carriage_returns_and_markup_survives(mns_emulator: InProcessEmulator) -> None:
    queue = mns_emulator.queue()
    mns_emulator.send(DEFAULT_QUEUE, ['{"a": "line1\r\nline2", "x": "<![CDATA[ ]]> &amp;"}'])
    received = queue.receive_message(0)
    assert received.message_body == '{"a": "line1\r\nline2", "x": "<![CDATA[ ]]> &amp;"}'


def test_base64_and_raw_encodings(mns_emulator: InProcessEmulator) -> None:
    encoded = mns_emulator.queue(raw=False)  # the SDK's default: base64 on the wire
    raw = mns_emulator.queue(raw=True)

    encoded.send_message(Message('{"n": 1}'))
    on_the_wire = raw.receive_message(0)
    assert on_the_wire.message_body == base64.b64encode(b'{"n": 1}').decode()
    raw.delete_message(on_the_wire.receipt_handle)

    encoded.send_message(Message('{"n": 2}'))
    decoded = encoded.receive_message(0)
    assert decoded.message_body == b'{"n": 2}'  # bytes: the SDK base64-decodes
    encoded.delete_message(decoded.receipt_handle)

    # Plain JSON received with base64 decoding on: the SDK fails the whole batch. Consumers receive raw.
    raw.send_message(Message('{"n": 3}'))
    with pytest.raises(MNSClientNetworkException) as exc:
        encoded.batch_receive_message(16, 0)
    assert exc.value.type == "RespDataDamaged"


def test_batch_send_receive_and_delete(mns_emulator: InProcessEmulator) -> None:
    queue = mns_emulator.queue()
    sent = queue.batch_send_message([Message(f'{{"n": {i}}}') for i in range(16)])
    assert len({m.message_id for m in sent}) == 16

    received = queue.batch_receive_message(10, 0)
    assert len(received) == 10
    rest = queue.batch_receive_message(16, 0)
    assert len(rest) == 6
    assert {m.message_id for m in received + rest} == {m.message_id for m in sent}
    assert mns_emulator.stats().inactive == 16

    queue.batch_delete_message([m.receipt_handle for m in received + rest][:16])
    assert mns_emulator.stats().total == 0


def test_priority_orders_delivery_lower_number_first(mns_emulator: InProcessEmulator) -> None:
    queue = mns_emulator.queue()
    queue.batch_send_message([Message(f"p{p}", priority=p) for p in (9, 3, 16, 1, 8)])
    queue.send_message(Message("default"))
    order = [(m.message_body, m.priority) for m in queue.batch_receive_message(16, 0)]
    assert order == [("p1", 1), ("p3", 3), ("p8", 8), ("default", 8), ("p9", 9), ("p16", 16)]


def test_delayed_message_is_invisible_until_due(mns_emulator: InProcessEmulator) -> None:
    queue = mns_emulator.queue()
    queue.send_message(Message("later", delay_seconds=1))
    assert mns_emulator.stats().delayed == 1
    with pytest.raises(MNSServerException) as empty:
        queue.receive_message(0)
    assert empty.value.type == "MessageNotExist"
    message = queue.receive_message(3)  # the long poll wakes when the delay ends
    assert message.message_body == "later"


def test_empty_queue_answers_message_not_exist_after_the_long_poll(mns_emulator: InProcessEmulator) -> None:
    queue = mns_emulator.queue()
    started = time.monotonic()
    with pytest.raises(MNSServerException) as exc:
        queue.batch_receive_message(16, 1)
    assert exc.value.type == "MessageNotExist"
    assert time.monotonic() - started >= 0.95
    assert exc.value.request_id  # from the <Error> body
    assert mns_emulator.operations()["BatchReceiveMessage 404"] == 1


@pytest.mark.parametrize(
    ("batch_size", "wait_seconds"),
    [(17, 0), (0, 0), (16, 31)],
    ids=["batch-17", "batch-0", "wait-31"],
)
def test_server_validates_what_the_sdk_does_not(
    mns_emulator: InProcessEmulator, batch_size: int, wait_seconds: int
) -> None:
    with pytest.raises(MNSServerException) as exc:
        mns_emulator.queue().batch_receive_message(batch_size, wait_seconds)
    assert exc.value.type == "InvalidArgument"
    assert "between" in exc.value.message


def test_batches_larger_than_16_are_rejected(mns_emulator: InProcessEmulator) -> None:
    queue = mns_emulator.queue()
    with pytest.raises(MNSServerException) as send:
        queue.batch_send_message([Message(str(i)) for i in range(17)])
    assert send.value.type == "InvalidArgument"
    assert mns_emulator.stats().sent == 0
    handles = [m.receipt_handle for m in _receive_all(mns_emulator, 17)]
    with pytest.raises(MNSServerException) as delete:
        queue.batch_delete_message(handles)
    assert delete.value.type == "InvalidArgument"
    assert mns_emulator.stats().inactive == 17


def _receive_all(mns: InProcessEmulator, count: int) -> list[Message]:
    mns.send(DEFAULT_QUEUE, [f"m{i}" for i in range(count)])
    queue, got = mns.queue(), list[Message]()
    while len(got) < count:
        got += queue.batch_receive_message(16, 0)
    return got


def test_batch_send_partial_failure_reports_each_entry(mns_emulator: InProcessEmulator) -> None:
    mns_emulator.create_queue("small-queue", maximum_message_size=1024)
    queue = mns_emulator.queue("small-queue")
    with pytest.raises(MNSServerException) as exc:
        queue.batch_send_message([Message("ok-1"), Message("x" * 2000), Message("ok-2")])
    assert exc.value.type == "InvalidArgument"
    entries = exc.value.sub_errors
    assert [sorted(e) for e in entries] == [
        ["MessageBodyMD5", "MessageId"],
        ["ErrorCode", "ErrorMessage"],
        ["MessageBodyMD5", "MessageId"],
    ]
    assert "1024" in entries[1]["ErrorMessage"]
    assert mns_emulator.stats("small-queue").active == 2  # the valid entries were sent


def test_invalid_priority_is_rejected(mns_emulator: InProcessEmulator) -> None:
    with pytest.raises(MNSServerException) as exc:
        mns_emulator.queue().send_message(Message("x", priority=17))
    assert exc.value.type == "InvalidArgument"
    assert "Priority" in exc.value.message


def test_peek_leaves_the_message_visible(mns_emulator: InProcessEmulator) -> None:
    queue = mns_emulator.queue()
    queue.send_message(Message("peeked"))
    assert queue.peek_message().message_body == "peeked"
    assert [m.message_body for m in queue.batch_peek_message(16)] == ["peeked"]
    assert mns_emulator.stats().active == 1
    assert queue.receive_message(0).dequeue_count == 1


def test_preloading_refuses_bodies_the_sdk_could_not_parse(mns_emulator: InProcessEmulator) -> None:
    with pytest.raises(MnsError) as exc:
        mns_emulator.send(DEFAULT_QUEUE, ["ok", "nul \x00 inside"])
    assert exc.value.code == "InvalidArgument"
    assert mns_emulator.stats().sent == 0
