"""Where a request's events go once they are normalized: Redis (the fast path), or the local spool.

Fast path: one publish through the batcher, answered 200 once Redis confirms. An authenticated request goes
to the spool instead (``worker.shim.spool``; 200 once it is on disk) when Redis does not confirm within
``IMS_WORKER_SHIM_SPOOL_AFTER_MS`` (frozen, failing over, far away), refuses (unreachable, out of memory), or
is near ``maxmemory``. After such a failure the next requests go straight to the spool for a moment instead
of each waiting out the budget again; the drainer's first successful publish ends that. A request accepted
without authentication (``IMS_WORKER_SHIM_ALLOW_UNSIGNED``) is never spooled: it gets the 503s as before.

A publish cut short by the budget keeps running: if it lands, the spooled copy is a duplicate when the
drainer publishes it (the dedupe marker), so the event is still handled once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import redis.exceptions
import structlog

from worker.errors import BrokerUnavailable
from worker.events import Event
from worker.settings import Settings
from worker.shim.answers import PublishResultLike, Trace
from worker.shim.batching import PublishBatcher
from worker.shim.memguard import MemoryGuard, RedisMemoryHigh
from worker.shim.metrics import ShimMetrics
from worker.shim.spool import Spool, SpoolFull, SpoolUnavailable

log = structlog.get_logger(__name__)

# After a failed or late publish, requests go straight to the spool for this long (the drainer's success
# ends it sooner).
STRAIGHT_TO_SPOOL_SECONDS = 1.0


@dataclass(frozen=True)
class Spooled:
    """The result the shim answers for an event it spooled: accepted, duplicate or not yet known."""

    event_id: str
    type: str
    enqueued: bool = True


class Acceptance:
    def __init__(
        self,
        settings: Settings,
        batcher: PublishBatcher,
        metrics: ShimMetrics,
        memory_guard: MemoryGuard | None,
        spool: Spool | None,
    ) -> None:
        self._batcher = batcher
        self._metrics = metrics
        self._memory_guard = memory_guard
        self.spool = spool
        self._budget = settings.shim_spool_after_ms / 1000
        self._straight_until = float("-inf")
        self._reason = ""

    # --- Redis's health as the shim sees it ----------------------------------------------------------------
    def redis_result(self, ok: bool, reason: str = "") -> None:
        """A publish (live or the drainer's) confirmed, or failed."""
        if ok:
            self._straight_until = float("-inf")
        else:
            self._straight_until = time.monotonic() + STRAIGHT_TO_SPOOL_SECONDS
            self._reason = reason or self._reason

    async def memory_ok(self) -> bool:
        """False near ``maxmemory``, or when Redis does not even answer ``INFO`` within the budget."""
        if self._memory_guard is None:
            return True
        try:
            if self._memory_guard.fresh:  # answered from its last reading: nothing to wait for
                await self._memory_guard.check()
                return True
            async with asyncio.timeout(self._budget):
                await self._memory_guard.check()
        except RedisMemoryHigh:
            return False
        except TimeoutError:
            self.redis_result(False, f"Redis did not answer within {self._budget * 1000:g} ms")
            return False
        return True

    # --- one request ---------------------------------------------------------------------------------------
    async def accept(
        self, source: str, events: Sequence[Event], trace: Trace, *, verified: bool
    ) -> tuple[Sequence[PublishResultLike], bool]:
        """The events' results and whether they were spooled; raises the 503s when neither is possible."""
        if not events:
            return [], False
        if self.spool is None or not verified:
            if self._memory_guard is not None:
                await self._memory_guard.check()  # RedisMemoryHigh: 503
            return await self._publish(source, events), False
        if time.monotonic() < self._straight_until:
            return await self._to_spool(source, events, trace, self._reason), True
        started = time.monotonic()
        if not await self.memory_ok():
            reason = self._reason if time.monotonic() < self._straight_until else "Redis is near maxmemory"
            return await self._to_spool(source, events, trace, reason), True
        # One timer per request, no task: the publish goes on in its batch if the budget passes first (it may
        # still land; the drainer's copy is then a duplicate).
        publishing = self._batcher.submit(events)
        remaining = max(0.0, self._budget - (time.monotonic() - started))
        timer = asyncio.get_running_loop().call_later(remaining, _late, publishing, self._budget)
        try:
            results: Sequence[PublishResultLike] = await publishing
        except (_Late, BrokerUnavailable, redis.exceptions.OutOfMemoryError) as exc:
            reason = str(exc)
        else:
            self._metrics.enqueued(source, time.monotonic() - started, *_counts(results))
            return results, False
        finally:
            timer.cancel()
        self.redis_result(False, reason)
        return await self._to_spool(source, events, trace, reason), True

    async def _publish(self, source: str, events: Sequence[Event]) -> Sequence[PublishResultLike]:
        if not events:
            return []
        started = time.monotonic()
        results: Sequence[PublishResultLike] = await self._batcher.publish(events)
        self._metrics.enqueued(source, time.monotonic() - started, *_counts(results))
        return results

    async def _to_spool(
        self, source: str, events: Sequence[Event], trace: Trace, reason: str
    ) -> Sequence[PublishResultLike]:
        assert self.spool is not None
        if not events:
            return []
        received_ms = min(int(event.received_at.timestamp() * 1000) for event in events)
        try:
            await self.spool.append(source, trace.request_id, events, received_ms)
        except (SpoolFull, SpoolUnavailable) as exc:
            self._metrics.spool_refused(source, exc.code)
            log.warning(
                "shim.spool.refused", request_id=trace.request_id, provider=source, error=exc.code, why=reason
            )
            raise
        self._metrics.spooled_events(source, len(events))
        trace.spooled = True
        log.info(
            "shim.spooled",
            request_id=trace.request_id,
            provider=source,
            events=len(events),
            why=reason,
            entries=self.spool.depth,
        )
        return [Spooled(event.id, event.type) for event in events]


class _Late(Exception):
    """The publish did not confirm within the spool budget."""


def _late(future: asyncio.Future[Sequence[PublishResultLike]], budget: float) -> None:
    if not future.done():
        future.set_exception(_Late(f"Redis did not confirm within {budget * 1000:g} ms"))


def _counts(results: Sequence[PublishResultLike]) -> tuple[int, int]:
    """(enqueued, duplicates)"""
    duplicates = sum(1 for result in results if not result.enqueued)
    return len(results) - duplicates, duplicates
