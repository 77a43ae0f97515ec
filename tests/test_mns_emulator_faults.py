"""Fault injection, seen from the real aliyun-mns-sdk: server errors, resets, latency, partial deletes."""

from __future__ import annotations

import threading
import time

import pytest
from mns.mns_exception import MNSClientNetworkException, MNSServerException
from mns.queue import Message

from tests.mns_emulator import DEFAULT_QUEUE, InProcessEmulator, mns_emulator, running_emulator
from worker.devtools.mns_emulator import FaultSettings

pytestmark = pytest.mark.integration
__all__ = ["mns_emulator"]


def test_error_rate_answers_500_and_503_with_error_xml(mns_emulator: InProcessEmulator) -> None:
    queue = mns_emulator.queue()
    mns_emulator.set_faults(error_rate=1.0)
    seen = set()
    for _ in range(12):
        with pytest.raises(MNSServerException) as exc:
            queue.send_message(Message("never stored"))
        assert exc.value.request_id and "fault injection" in exc.value.message
        seen.add(exc.value.type)
    assert seen == {"InternalError", "ServiceUnavailable"}
    assert mns_emulator.stats().sent == 0

    mns_emulator.clear_faults()
    queue.send_message(Message("stored"))
    assert mns_emulator.stats().sent == 1


def test_dropped_connection_is_a_network_error_and_loses_the_request(mns_emulator: InProcessEmulator) -> None:
    queue = mns_emulator.queue()
    mns_emulator.set_faults(drop_rate=1.0)
    with pytest.raises(MNSClientNetworkException) as exc:
        queue.send_message(Message("lost"))
    assert exc.value.type == "NetWorkException"
    assert mns_emulator.stats().sent == 0
    assert mns_emulator.injected()["drop"] == 1  # a reset, not a clean close: the SDK did not retry

    mns_emulator.clear_faults()
    queue.send_message(Message("after"))  # the SDK reconnects by itself
    assert mns_emulator.stats().sent == 1


def test_dropped_response_happens_after_the_operation(mns_emulator: InProcessEmulator) -> None:
    queue = mns_emulator.queue()
    queue.send_message(Message("to delete"))
    handle = queue.receive_message(0).receipt_handle

    mns_emulator.set_faults(drop_response_rate=1.0)
    with pytest.raises(MNSClientNetworkException):
        queue.send_message(Message("stored, but the client cannot know"))
    with pytest.raises(MNSClientNetworkException):
        queue.delete_message(handle)
    mns_emulator.clear_faults()

    stats = mns_emulator.stats()
    assert (stats.sent, stats.deleted, stats.active) == (2, 1, 1)
    with pytest.raises(MNSServerException) as retry:
        queue.delete_message(handle)  # a retried delete meets a dead handle
    assert retry.value.type == "MessageNotExist"


def test_latency_is_added_to_every_request(mns_emulator: InProcessEmulator) -> None:
    queue = mns_emulator.queue()
    mns_emulator.set_faults(latency_ms=150)
    started = time.monotonic()
    queue.send_message(Message("slow"))
    queue.receive_message(0)
    assert time.monotonic() - started >= 0.3


def test_partial_delete_failure_keeps_the_reported_messages(mns_emulator: InProcessEmulator) -> None:
    mns_emulator.send(DEFAULT_QUEUE, [f"m{i}" for i in range(16)])
    queue = mns_emulator.queue()
    messages = queue.batch_receive_message(16, 0)
    mns_emulator.set_faults(partial_delete_rate=0.5)
    with pytest.raises(MNSServerException) as exc:
        queue.batch_delete_message([m.receipt_handle for m in messages])
    failed = {e["ReceiptHandle"] for e in exc.value.sub_errors}
    assert exc.value.type == "InternalError"
    assert {e["ErrorCode"] for e in exc.value.sub_errors} == {"InternalError"}
    assert 0 < len(failed) < 16
    stats = mns_emulator.stats()
    assert (stats.inactive, stats.deleted) == (len(failed), 16 - len(failed))

    mns_emulator.clear_faults()  # the failed handles are still alive and can be deleted later
    queue.batch_delete_message(sorted(failed))
    assert mns_emulator.stats().total == 0


def _outcomes(seed: int, requests: int = 40) -> list[str]:
    faults = FaultSettings(error_rate=0.3, drop_rate=0.2)
    with running_emulator(faults=faults, seed=seed) as mns:
        queue = mns.queue()
        outcomes = []
        for i in range(requests):
            try:
                queue.send_message(Message(f"m{i}"))
                outcomes.append("ok")
            except MNSServerException as exc:
                outcomes.append(exc.type)
            except MNSClientNetworkException:
                outcomes.append("network")
        return outcomes


def test_a_seed_makes_faults_reproducible() -> None:
    first, again, other = _outcomes(7), _outcomes(7), _outcomes(8)
    assert first == again
    assert first != other
    assert {"ok", "network", "InternalError", "ServiceUnavailable"} <= set(first)


def test_stop_and_start_is_an_outage_that_keeps_the_queues(mns_emulator: InProcessEmulator) -> None:
    queue = mns_emulator.queue()
    queue.send_message(Message("survives"))
    mns_emulator.emulator.stop()
    with pytest.raises(MNSClientNetworkException):
        queue.receive_message(0)
    mns_emulator.emulator.start()
    assert queue.receive_message(0).message_body == "survives"


def test_stopping_ends_pending_long_polls(mns_emulator: InProcessEmulator) -> None:
    queue = mns_emulator.queue()
    errors: list[Exception] = []

    def poll() -> None:
        try:
            queue.receive_message(20)
        except (MNSClientNetworkException, MNSServerException) as exc:
            errors.append(exc)

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.2)
    started = time.monotonic()
    mns_emulator.emulator.stop()
    poller.join(timeout=5)
    assert not poller.is_alive() and time.monotonic() - started < 3
    assert len(errors) == 1
    mns_emulator.emulator.start()
