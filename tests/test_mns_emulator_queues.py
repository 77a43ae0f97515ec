"""Queue operations and request authentication, through the real aliyun-mns-sdk."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from types import SimpleNamespace

import mns.mns_client
import pytest
from mns.account import Account
from mns.mns_common import RequestInfo
from mns.mns_exception import MNSServerException
from mns.queue import Message, Queue, QueueMeta

from tests.mns_emulator import DEFAULT_QUEUE, InProcessEmulator, mns_emulator

pytestmark = pytest.mark.integration
__all__ = ["mns_emulator"]


def test_create_queue_201_then_204_then_409(mns_emulator: InProcessEmulator) -> None:
    queue = mns_emulator.account().get_queue("ice-callback-new")
    url = queue.create(QueueMeta(vis_timeout=60))
    assert url == f"{mns_emulator.endpoint}/queues/ice-callback-new"
    assert mns_emulator.operations()["CreateQueue 201"] == 1

    assert queue.create(QueueMeta(vis_timeout=60)) == url  # same attributes: 204, Location again
    assert mns_emulator.operations()["CreateQueue 204"] == 1

    with pytest.raises(MNSServerException) as exc:
        queue.create(QueueMeta(vis_timeout=61))
    assert exc.value.type == "QueueAlreadyExist"


def _attributes(queue: Queue) -> QueueMeta:
    # The SDK itself sets the message counters it has deprecated, so get_attributes always warns.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return queue.get_attributes()


def test_get_queue_attributes_has_every_field_the_sdk_requires(mns_emulator: InProcessEmulator) -> None:
    mns_emulator.send(DEFAULT_QUEUE, ["a", "b", "c"])
    mns_emulator.send(DEFAULT_QUEUE, ["later"], delay_seconds=60)
    queue = mns_emulator.queue()
    queue.receive_message(0)
    meta = _attributes(queue)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        counts = (meta.active_messages, meta.inactive_messages, meta.delay_messages)
    assert counts == (2, 1, 1)
    assert meta.queue_name == DEFAULT_QUEUE
    assert (meta.visibility_timeout, meta.maximum_message_size, meta.polling_wait_seconds) == (30, 65536, 0)
    assert (meta.message_retention_period, meta.delay_seconds, meta.logging_enabled) == (345600, 0, False)
    assert meta.create_time <= time.time() and meta.last_modify_time >= meta.create_time


def test_set_queue_attributes_changes_only_what_is_given(mns_emulator: InProcessEmulator) -> None:
    queue = mns_emulator.queue()
    queue.set_attributes(QueueMeta(polling_wait_sec=5, logging_enabled=True))
    meta = _attributes(queue)
    assert (meta.polling_wait_seconds, meta.logging_enabled, meta.visibility_timeout) == (5, True, 30)


def test_invalid_queue_attributes_are_rejected(mns_emulator: InProcessEmulator) -> None:
    with pytest.raises(MNSServerException) as exc:
        mns_emulator.account().get_queue("bad-attrs").create(QueueMeta(vis_timeout=50000))
    assert exc.value.type == "InvalidArgument"
    assert "VisibilityTimeout" in exc.value.message


def test_invalid_queue_name_is_rejected(mns_emulator: InProcessEmulator) -> None:
    with pytest.raises(MNSServerException) as exc:
        mns_emulator.account().get_queue("9-starts-with-a-digit").create(QueueMeta())
    assert exc.value.type == "InvalidQueueName"


def test_list_and_delete_queues(mns_emulator: InProcessEmulator) -> None:
    account = mns_emulator.account()
    for name in ("ice-callback-a", "ice-callback-b", "other"):
        account.get_queue(name).create(QueueMeta())
    urls, marker = account.list_queue(prefix="ice-callback-", ret_number=2)
    assert urls == [
        f"{mns_emulator.endpoint}/queues/ice-callback-a",
        f"{mns_emulator.endpoint}/queues/ice-callback-b",
    ]
    assert marker == "ice-callback-b"
    urls, marker = account.list_queue(prefix="ice-callback-", ret_number=2, marker=marker)
    assert urls == [f"{mns_emulator.endpoint}/queues/ice-callback-test"] and marker == ""

    account.get_queue("other").delete()
    with pytest.raises(MNSServerException) as exc:
        _attributes(account.get_queue("other"))
    assert exc.value.type == "QueueNotExist"


def test_missing_queue_is_queue_not_exist(mns_emulator: InProcessEmulator) -> None:
    queue = mns_emulator.queue("no-such-queue")
    operations: list[Callable[[], object]] = [
        lambda: queue.receive_message(0),
        lambda: queue.send_message(Message("x")),
        lambda: queue.batch_delete_message(["1-AAAAAAAAAAAAAAAAAAAAAAA="]),
    ]
    for operation in operations:
        with pytest.raises(MNSServerException) as exc:
            operation()
        assert exc.value.type == "QueueNotExist"
        assert exc.value.request_id


def test_deleting_a_queue_ends_pending_long_polls(mns_emulator: InProcessEmulator) -> None:
    queue = mns_emulator.queue()
    threading.Timer(0.3, lambda: mns_emulator.emulator.delete_queue(DEFAULT_QUEUE)).start()
    started = time.monotonic()
    with pytest.raises(MNSServerException) as exc:
        queue.receive_message(10)
    assert exc.value.type == "QueueNotExist"
    assert time.monotonic() - started < 5


def test_wrong_secret_is_signature_does_not_match(mns_emulator: InProcessEmulator) -> None:
    queue = mns_emulator.account(access_key_secret="not-the-secret").get_queue(DEFAULT_QUEUE)
    operations: list[Callable[[], object]] = [
        lambda: _attributes(queue),
        lambda: queue.send_message(Message("x")),
    ]
    for operation in operations:
        with pytest.raises(MNSServerException) as exc:
            operation()
        assert exc.value.type == "SignatureDoesNotMatch"
    assert mns_emulator.stats().sent == 0


def test_unknown_access_key_id_is_rejected(mns_emulator: InProcessEmulator) -> None:
    account = Account(mns_emulator.endpoint, "someone-else", "whatever")
    try:
        with pytest.raises(MNSServerException) as exc:
            _attributes(account.get_queue(DEFAULT_QUEUE))
    finally:
        account.mns_client.close_connection()
    assert exc.value.type == "InvalidAccessKeyId"


@pytest.mark.parametrize(("skew", "accepted"), [(-16 * 60, False), (16 * 60, False), (-10 * 60, True)])
def test_request_date_more_than_15_minutes_off_is_rejected(
    mns_emulator: InProcessEmulator, monkeypatch: pytest.MonkeyPatch, skew: int, accepted: bool
) -> None:
    # Shift only the SDK's clock: it signs with time.gmtime() from its own module namespace.
    skewed = SimpleNamespace(strftime=time.strftime, gmtime=lambda: time.gmtime(time.time() + skew))
    monkeypatch.setattr(mns.mns_client, "time", skewed)
    queue = mns_emulator.queue()
    if accepted:
        queue.send_message(Message("x"))
        return
    with pytest.raises(MNSServerException) as exc:
        queue.send_message(Message("x"))
    assert exc.value.type == "TimeExpired"
    assert "900 seconds" in exc.value.message


def test_every_x_mns_header_is_signed_and_the_sts_token_is_not(mns_emulator: InProcessEmulator) -> None:
    account = Account(
        mns_emulator.endpoint, mns_emulator.access_key_id, mns_emulator.access_key_secret, "sts"
    )
    try:
        queue = account.get_queue(DEFAULT_QUEUE)
        queue.send_message(Message("traced"), req_info=RequestInfo("trace-123"))  # x-mns-user-request-id
        assert queue.receive_message(0, req_info=RequestInfo("trace-456")).message_body == b"traced"
    finally:
        account.mns_client.close_connection()
