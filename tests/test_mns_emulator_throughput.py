"""The emulator keeps up with a consumer benchmark: batch drains and small requests, through the real SDK.

The emulator runs as a subprocess so that the SDK client (minidom, HMAC) and the server do not share a GIL,
as in the consumer benchmark. Thresholds are a fraction of what a 2-core machine does, so that the test
catches an O(n) regression (a 20,000-message preload would crawl) without being flaky.
"""

from __future__ import annotations

import time

import pytest
from mns.mns_exception import MNSServerException

from tests.mns_emulator import DEFAULT_QUEUE, running_emulator

pytestmark = pytest.mark.integration

MESSAGES = 4800


def test_batch_drain_and_small_request_rates() -> None:
    with running_emulator(in_process=False) as mns:
        body = '{"EventType": "ProduceMediaComplete", "MessageBody": {"Status": "Success", "pad": "%s"}}'
        for start in range(0, MESSAGES, 1600):
            mns.send(DEFAULT_QUEUE, [body % (i,) for i in range(start, start + 1600)])
        assert mns.stats().active == MESSAGES

        queue = mns.queue()
        started = time.perf_counter()
        drained = 0
        while drained < MESSAGES:
            batch = queue.batch_receive_message(16, 0)
            queue.batch_delete_message([m.receipt_handle for m in batch])
            drained += len(batch)
        drain_rate = drained / (time.perf_counter() - started)
        assert mns.stats().total == 0

        started = time.perf_counter()
        small = 600
        for _ in range(small):
            with pytest.raises(MNSServerException):
                queue.receive_message(0)
        small_rate = small / (time.perf_counter() - started)

    print(f"\nemulator: drain {drain_rate:.0f} msg/s (batches of 16); {small_rate:.0f} small requests/s")
    assert drain_rate > 1000, f"draining through the emulator is too slow: {drain_rate:.0f} msg/s"
    assert small_rate > 500, f"small requests are too slow: {small_rate:.0f}/s"
