"""Coalescing publishes: the events of every request that reaches ``publish`` in the same event-loop iteration
go to Redis in one round trip (one script call), and each request gets back its own results.

Why: under load most of a request's cost is the Redis client's per-command work (packing, a write, a read,
parsing) and Redis's own per-command work; a webhook carries one or two events. Batching what is ready in one
iteration costs a request nothing when it is alone (the flush runs on the next iteration, microseconds later)
and amortizes the round trip when many arrive together. Semantics do not change: the publisher's script still
marks and enqueues event by event, so a batch holding the same event id twice enqueues it once.

Every request of a batch shares its outcome: results, ``BrokerUnavailable`` (also on timeout, so nothing
waits forever), or the unexpected error, which each request then answers as a 500.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from worker.errors import BrokerUnavailable
from worker.events import Event

# Bounds one script call: Redis runs a script to completion while every other client waits.
MAX_BATCH_EVENTS = 128


class _Publisher(Protocol):
    async def publish(self, events: Sequence[Event]) -> Sequence[Any]: ...


_Waiter = tuple[Sequence[Event], "asyncio.Future[Sequence[Any]]"]


class PublishBatcher:
    def __init__(self, publisher: _Publisher, *, timeout: float, max_events: int = MAX_BATCH_EVENTS) -> None:
        self._publisher = publisher
        self._timeout = timeout
        self._max_events = max_events
        self._pending: list[_Waiter] = []
        self._pending_events = 0
        self._scheduled = False
        self._in_flight: set[asyncio.Task[None]] = set()

    async def publish(self, events: Sequence[Event]) -> Sequence[Any]:
        """This request's results, in order, once the batch it joined is confirmed by Redis."""
        return await self.submit(events)

    def submit(self, events: Sequence[Event]) -> asyncio.Future[Sequence[Any]]:
        """The future of ``publish``. A caller may complete it first (the shim's spool budget, with an
        exception): the batch's outcome then leaves it as it is."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Sequence[Any]] = loop.create_future()
        self._pending.append((events, future))
        self._pending_events += len(events)
        if self._pending_events >= self._max_events:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    async def drain(self) -> None:
        """Wait for every batch already sent (at shutdown, before the publisher is closed)."""
        self._flush()
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending, self._pending_events = self._pending, [], 0
        if batch:
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._in_flight.add(task)  # a strong reference, or the task may be collected mid-flight
            task.add_done_callback(self._in_flight.discard)

    async def _send(self, batch: list[_Waiter]) -> None:
        events = [event for request_events, _ in batch for event in request_events]
        try:
            async with asyncio.timeout(self._timeout):
                results = await self._publisher.publish(events)
        except TimeoutError:
            # Answering 503 is safe even if the write lands later: the retry is a duplicate, answered 200.
            for _, future in batch:
                _fail(future, BrokerUnavailable(f"Redis did not confirm within {self._timeout:g} s"))
            return
        except BrokerUnavailable as exc:
            for _, future in batch:
                copy = BrokerUnavailable(str(exc))
                copy.__cause__ = exc.__cause__  # what Redis said (OOM is answered apart from unreachable)
                _fail(future, copy)
            return
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - handed to each request, whose one catch-all answers 500
            for _, future in batch:
                _fail(future, exc)
            return
        if len(results) != len(events):
            mismatch = RuntimeError(f"publisher returned {len(results)} results for {len(events)} events")
            for _, future in batch:
                _fail(future, mismatch)
            return
        start = 0
        for request_events, future in batch:
            end = start + len(request_events)
            if not future.done():
                future.set_result(results[start:end])
            start = end


def _fail(future: asyncio.Future[Sequence[Any]], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
