"""PublishBatcher: requests that publish in the same loop iteration share one publish call, and its outcome.

A recording stand-in publisher is enough here (the batching is pure asyncio); that concurrent deliveries of
one event through real Redis enqueue it once is checked in test_shim_http.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from worker.errors import BrokerUnavailable
from worker.events import Event, EventData
from worker.shim.batching import PublishBatcher


def event(n: int) -> Event:
    return Event(
        type="unknown.ims", id=f"e{n}", source="ims", received_at=datetime.now(UTC), data=EventData(), raw={}
    )


@dataclass
class Recorder:
    failure: BaseException | None = None
    delay: float = 0.0
    short: bool = False
    calls: list[list[str]] = field(default_factory=list)

    async def publish(self, events: Sequence[Event]) -> Sequence[Any]:
        self.calls.append([e.id for e in events])
        await asyncio.sleep(self.delay)
        if self.failure is not None:
            raise self.failure
        results = [(e.id, True) for e in events]
        return results[:-1] if self.short else results


async def publish_all(batcher: PublishBatcher, groups: list[list[Event]]) -> list[Any]:
    return list(await asyncio.gather(*(batcher.publish(g) for g in groups), return_exceptions=True))


def test_requests_of_one_iteration_share_one_call_and_get_their_own_results() -> None:
    recorder = Recorder()
    batcher = PublishBatcher(recorder, timeout=1)
    groups = [[event(1)], [event(2), event(3)], [event(4)]]
    results = asyncio.run(publish_all(batcher, groups))
    assert recorder.calls == [["e1", "e2", "e3", "e4"]]
    assert results == [[("e1", True)], [("e2", True), ("e3", True)], [("e4", True)]]


def test_a_full_batch_goes_at_once_and_the_rest_follows() -> None:
    recorder = Recorder()
    batcher = PublishBatcher(recorder, timeout=1, max_events=2)
    results = asyncio.run(publish_all(batcher, [[event(n)] for n in range(5)]))
    assert recorder.calls == [["e0", "e1"], ["e2", "e3"], ["e4"]]
    assert [r[0][0] for r in results] == ["e0", "e1", "e2", "e3", "e4"]


def test_requests_in_later_iterations_get_their_own_batch() -> None:
    recorder = Recorder()
    batcher = PublishBatcher(recorder, timeout=1)

    async def one_after_another() -> None:
        await batcher.publish([event(1)])
        await batcher.publish([event(2)])

    asyncio.run(one_after_another())
    assert recorder.calls == [["e1"], ["e2"]]


@pytest.mark.parametrize(
    ("recorder", "expected", "message"),
    [
        (Recorder(failure=BrokerUnavailable("Redis down")), BrokerUnavailable, "Redis down"),
        (Recorder(delay=5), BrokerUnavailable, "did not confirm within 0.05 s"),
        (Recorder(failure=ValueError("a bug")), ValueError, "a bug"),
        (Recorder(short=True), RuntimeError, "returned 1 results for 2 events"),
    ],
    ids=["broker-down", "timeout", "bug", "short-answer"],
)
def test_every_request_of_a_batch_shares_its_failure(
    recorder: Recorder, expected: type[Exception], message: str
) -> None:
    batcher = PublishBatcher(recorder, timeout=0.05)
    results = asyncio.run(publish_all(batcher, [[event(1)], [event(2)]]))
    assert len(recorder.calls) == 1
    for result in results:
        assert isinstance(result, expected) and message in str(result)


def test_drain_waits_for_batches_in_flight() -> None:
    recorder = Recorder(delay=0.05)
    batcher = PublishBatcher(recorder, timeout=1)

    async def publish_then_drain() -> Any:
        waiting = asyncio.ensure_future(batcher.publish([event(1)]))
        await asyncio.sleep(0)  # the request joins a batch
        await batcher.drain()
        assert waiting.done()
        return waiting.result()

    assert asyncio.run(publish_then_drain()) == [("e1", True)]
