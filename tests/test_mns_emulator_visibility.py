"""Visibility timeouts, receipt handles and long polls, through the real aliyun-mns-sdk."""

from __future__ import annotations

import threading
import time

import pytest
from mns.mns_exception import MNSServerException
from mns.queue import Message

from tests.mns_emulator import DEFAULT_QUEUE, InProcessEmulator, mns_emulator

pytestmark = pytest.mark.integration
__all__ = ["mns_emulator"]


def test_long_poll_returns_as_soon_as_a_message_arrives(mns_emulator: InProcessEmulator) -> None:
    consumer, producer = mns_emulator.queue(), mns_emulator.queue()
    threading.Timer(0.3, lambda: producer.send_message(Message("wake up"))).start()
    started = time.monotonic()
    messages = consumer.batch_receive_message(16, 10)
    elapsed = time.monotonic() - started
    assert [m.message_body for m in messages] == ["wake up"]
    assert 0.25 <= elapsed < 2.0


def test_a_long_poll_does_not_block_other_connections(mns_emulator: InProcessEmulator) -> None:
    mns_emulator.create_queue("other-queue")
    waiting = mns_emulator.queue()
    result: list[str] = []

    def poll() -> None:
        try:
            waiting.receive_message(2)
        except MNSServerException as exc:
            result.append(exc.type)

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.1)
    other = mns_emulator.queue("other-queue")
    started = time.monotonic()
    for i in range(20):
        other.send_message(Message(f"m{i}"))
    assert len(other.batch_receive_message(16, 0)) == 16
    assert time.monotonic() - started < 1.0, "requests on other connections waited for the long poll"
    assert poller.is_alive(), "the long poll should still be pending"
    poller.join()
    assert result == ["MessageNotExist"]


def test_visibility_timeout_expiry_redelivers_with_new_handle_and_count(
    mns_emulator: InProcessEmulator,
) -> None:
    mns_emulator.create_queue("short-visibility", visibility_timeout=1)
    queue = mns_emulator.queue("short-visibility")
    queue.send_message(Message("again"))
    first = queue.receive_message(0)
    assert first.dequeue_count == 1
    with pytest.raises(MNSServerException):
        queue.receive_message(0)  # in flight: invisible

    second = queue.receive_message(5)  # the long poll wakes when the visibility timeout ends
    assert second.message_id == first.message_id
    assert second.dequeue_count == 2
    assert second.first_dequeue_time == first.first_dequeue_time
    assert second.receipt_handle != first.receipt_handle
    assert second.next_visible_time >= first.next_visible_time + 1000

    with pytest.raises(MNSServerException) as stale:
        queue.delete_message(first.receipt_handle)  # the old handle died with the redelivery
    assert stale.value.type == "MessageNotExist"
    queue.delete_message(second.receipt_handle)
    assert mns_emulator.stats("short-visibility").total == 0


def test_handle_dies_when_the_message_becomes_visible_again(mns_emulator: InProcessEmulator) -> None:
    mns_emulator.create_queue("short-visibility", visibility_timeout=1)
    queue = mns_emulator.queue("short-visibility")
    queue.send_message(Message("late delete"))
    handle = queue.receive_message(0).receipt_handle
    time.sleep(1.1)
    with pytest.raises(MNSServerException) as exc:
        queue.delete_message(handle)
    assert exc.value.type == "MessageNotExist"
    assert mns_emulator.stats("short-visibility").active == 1


def test_change_visibility_gives_a_new_handle_and_kills_the_old(mns_emulator: InProcessEmulator) -> None:
    queue = mns_emulator.queue()
    queue.send_message(Message("extend me"))
    received = queue.receive_message(0)
    changed = queue.change_message_visibility(received.receipt_handle, 100)
    assert changed.receipt_handle != received.receipt_handle
    assert int(changed.next_visible_time) >= int(time.time() * 1000) + 99_000

    with pytest.raises(MNSServerException) as old:
        queue.change_message_visibility(received.receipt_handle, 10)
    assert old.value.type == "MessageNotExist"
    with pytest.raises(MNSServerException):
        queue.delete_message(received.receipt_handle)
    queue.delete_message(changed.receipt_handle)
    assert mns_emulator.stats().total == 0


def test_change_visibility_can_make_a_message_visible_soon(mns_emulator: InProcessEmulator) -> None:
    queue = mns_emulator.queue()
    queue.send_message(Message("retry soon"))
    received = queue.receive_message(0)
    queue.change_message_visibility(received.receipt_handle, 1)
    again = queue.receive_message(5)
    assert (again.message_id, again.dequeue_count) == (received.message_id, 2)


def test_malformed_handle_is_a_receipt_handle_error(mns_emulator: InProcessEmulator) -> None:
    with pytest.raises(MNSServerException) as exc:
        mns_emulator.queue().delete_message("not-a-handle")
    assert exc.value.type == "ReceiptHandleError"


def test_handles_containing_plus_are_read_from_the_raw_query(mns_emulator: InProcessEmulator) -> None:
    # Handles are base64: many contain "+" (and "/"), which the SDK puts in the query unencoded.
    mns_emulator.send(DEFAULT_QUEUE, [f"m{i}" for i in range(64)])
    queue = mns_emulator.queue()
    received: list[Message] = []
    while len(received) < 64:
        received += queue.batch_receive_message(16, 0)
    with_plus = [m for m in received if "+" in m.receipt_handle]
    assert with_plus, "the seeded emulator hands out handles with '+'"
    for message in with_plus:
        queue.delete_message(message.receipt_handle)
    changed = queue.change_message_visibility(
        next(m for m in received if "+" not in m.receipt_handle).receipt_handle, 5
    )
    assert mns_emulator.stats().inactive == 64 - len(with_plus)
    assert changed.receipt_handle


def test_partial_batch_delete_is_a_404_with_per_handle_errors(mns_emulator: InProcessEmulator) -> None:
    queue = mns_emulator.queue()
    queue.batch_send_message([Message(f"m{i}") for i in range(3)])
    messages = queue.batch_receive_message(16, 0)
    queue.delete_message(messages[0].receipt_handle)  # its handle is now dead
    handles = [m.receipt_handle for m in messages] + ["garbage"]

    with pytest.raises(MNSServerException) as exc:
        queue.batch_delete_message(handles)
    assert exc.value.type == "MessageNotExist"  # the first error, as the SDK reports it
    errors = {e["ReceiptHandle"]: e["ErrorCode"] for e in exc.value.sub_errors}
    assert errors == {messages[0].receipt_handle: "MessageNotExist", "garbage": "ReceiptHandleError"}
    assert all(e["ErrorMessage"] for e in exc.value.sub_errors)
    assert mns_emulator.stats().total == 0  # the two live handles were deleted
