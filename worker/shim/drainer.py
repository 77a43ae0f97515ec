"""The drainer: re-publishes what the spool holds, oldest first, as soon as Redis answers again.

One task per shim process. It publishes through the same publisher (the same script: dedupe, outbox and
journal) as the fast path, and deletes an entry only after that publish returned: a crash anywhere in between
publishes the entry again, and the dedupe marker makes the repeat a duplicate (at-least-once, handled once).
It holds itself to ``IMS_WORKER_SHIM_SPOOL_DRAIN_PER_SECOND`` so a backlog does not starve live traffic,
backs off while Redis stays unavailable or near ``maxmemory``, and every few seconds adopts the files of
processes that died (``worker.shim.spooldir``): at start that is whatever a kill -9'd predecessor left.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
import structlog

from worker.events import Event
from worker.events.envelope import mark_data_from_raw
from worker.settings import Settings
from worker.shim.metrics import ShimMetrics
from worker.shim.spool import Spool
from worker.shim.spooldir import Held
from worker.shim.spoolfile import Entry

log = structlog.get_logger(__name__)

ADOPT_EVERY_SECONDS = 5.0
ROWS_PER_PUBLISH = 32
BACKOFF_SECONDS = (0.25, 5.0)

Publish = Callable[[Sequence[Event], Sequence[int]], Awaitable[Any]]


def decode(entry: Entry) -> list[Event]:
    events = []
    for item in orjson.loads(entry.events):
        event = Event.model_validate(item)
        if "data" not in item:  # written without ``data`` because it derives from ``raw``: keep it so
            mark_data_from_raw(event)
        events.append(event)
    return events


class Drainer:
    def __init__(
        self,
        spool: Spool,
        publish: Publish,
        settings: Settings,
        metrics: ShimMetrics,
        *,
        on_result: Callable[[bool], None],
        may_publish: Callable[[], Awaitable[bool]],
    ) -> None:
        """``publish(events, waited_ms)`` raises when Redis did not take them; ``on_result`` hears whether it
        did; ``may_publish`` says whether Redis should be written now (False near ``maxmemory``)."""
        self._spool = spool
        self._publish = publish
        self._timeout = settings.shim_publish_timeout_seconds
        self._rate = settings.shim_spool_drain_per_second
        self._metrics = metrics
        self._on_result = on_result
        self._may_publish = may_publish
        self._task: asyncio.Task[None] | None = None
        self._backoff = BACKOFF_SECONDS[0]
        self._failing = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="shim-spool-drainer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        next_adoption = 0.0
        while True:
            try:
                if time.monotonic() >= next_adoption:
                    next_adoption = time.monotonic() + ADOPT_EVERY_SECONDS
                    for adopted in await self._spool.adopt():
                        self._metrics.process_gone(adopted.owner_pid)
                    self._metrics.spool_state(self._spool)
                held = self._next()
                if held is None:
                    await self._idle(next_adoption)
                elif not await self._may_publish():
                    await self._pause("Redis is near maxmemory")
                else:
                    await self._drain_some(held)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("shim.spool.drain_error")
                await asyncio.sleep(BACKOFF_SECONDS[1])

    def _next(self) -> Held | None:
        """The file whose oldest entry is the oldest: oldest first across the files we hold."""
        candidates = [h for h in self._spool.held() if h.file.depth]
        return min(candidates, key=lambda h: h.file.oldest_ms or 0) if candidates else None

    async def _idle(self, until: float) -> None:
        self._spool.appended.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.05, until - time.monotonic())):
                await self._spool.appended.wait()

    async def _pause(self, reason: str) -> None:
        if not self._failing:
            self._failing = True
            log.warning("shim.spool.waiting", reason=reason, entries=self._spool.depth)
        await asyncio.sleep(self._backoff)
        self._backoff = min(self._backoff * 2, BACKOFF_SECONDS[1])

    async def _drain_some(self, held: Held) -> None:
        entries = await self._spool.oldest(held, ROWS_PER_PUBLISH)
        decoded = [decode(entry) for entry in entries]
        events = [event for request in decoded for event in request]
        now = int(time.time() * 1000)
        waited = [
            now - entry.received_ms for entry, request in zip(entries, decoded, strict=True) for _ in request
        ]
        try:
            async with asyncio.timeout(self._timeout):
                await self._publish(events, waited)
        except Exception as exc:  # noqa: BLE001 - BrokerUnavailable, a timeout, Redis refusing the write
            self._on_result(False)
            await self._pause(f"{type(exc).__name__}: {exc}")
            return
        self._on_result(True)
        await self._spool.delete(held, entries)
        if self._failing:
            self._failing = False
            log.info("shim.spool.resumed", entries=self._spool.depth)
        self._backoff = BACKOFF_SECONDS[0]
        for entry, request in zip(entries, decoded, strict=True):
            self._metrics.spool_drained(entry.source, len(request))
        self._metrics.spool_state(self._spool)
        log.info(
            "shim.spool.drained",
            requests=len(entries),
            events=len(events),
            waited_ms_max=max(waited),
            request_ids=[entry.request_id for entry in entries][:8],
            left=self._spool.depth,
        )
        await asyncio.sleep(len(events) / self._rate)
