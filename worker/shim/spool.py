"""The shim's durable local spool: where an authenticated request goes when Redis cannot take it in time.

``append`` returns once the request's events are committed (fsync'd) to this process's own SQLite file
(``worker.shim.spoolfile``; ownership and adoption of a dead process's files: ``worker.shim.spooldir``); the
shim answers 200 only then. Appends that arrive in the same event-loop iteration share one transaction (one
fsync), as publishes share one Redis round trip. Every SQLite call runs on one thread of the spool's own, so
the event loop never waits on the disk and the connection is never used from two threads.

Refusals are ``ShimError`` 503s with ``Retry-After``, never 500s: ``SpoolFull`` above
``IMS_WORKER_SHIM_SPOOL_MAX_BYTES`` (the provider retries, the bound holds), ``SpoolUnavailable`` when the
disk refuses the write (full, read-only, I/O error). The drainer (``worker.shim.drainer``) empties the files.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import structlog

from worker.delivery.taskmessage import encode_event
from worker.errors import ConfigurationError
from worker.events import Event
from worker.settings import Settings
from worker.shim.errors import ShimError
from worker.shim.spooldir import Held, SpoolDir, SpoolDirError
from worker.shim.spoolfile import Entry, Row

log = structlog.get_logger(__name__)

RETRY_AFTER_SECONDS = "5"
# After the disk refused a write, readiness reports the spool unable to accept for this long.
FAILED_WRITE_MEMORY_SECONDS = 5.0
T = TypeVar("T")


class SpoolFull(ShimError):
    status = 503
    code = "spool_full"


class SpoolUnavailable(ShimError):
    status = 503
    code = "spool_unavailable"


def encode_events(events: Sequence[Event]) -> bytes:
    return b"[" + b",".join(encode_event(event) for event in events) + b"]"


class Spool:
    """This process's spool file and the files it adopted from dead processes."""

    def __init__(self, settings: Settings) -> None:
        self.directory = SpoolDir(Path(settings.effective_shim_spool_dir))
        self.max_bytes = settings.shim_spool_max_bytes
        # Readiness says "full" once a large request might no longer fit, before the last byte is used.
        self._margin = min(settings.shim_max_body_bytes, self.max_bytes // 8)
        try:
            self.directory.prepare()
            self.own: Held = self.directory.claim_own()
        except (SpoolDirError, OSError) as exc:
            raise ConfigurationError(f"IMS_WORKER_SHIM_SPOOL_DIR: {exc}") from exc
        self.adopted: list[Held] = []
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="shim-spool")
        self._pending: list[tuple[Row, asyncio.Future[None]]] = []
        self._pending_bytes = 0
        self._scheduled = False
        self._commits: set[asyncio.Task[None]] = set()
        self._failed_at = float("-inf")
        self.appended = asyncio.Event()  # set on every commit: wakes the drainer

    # --- state ---------------------------------------------------------------------------------------------
    def held(self) -> list[Held]:
        return [self.own, *self.adopted]

    @property
    def depth(self) -> int:
        return sum(h.file.depth for h in self.held())

    @property
    def bytes(self) -> int:
        return sum(h.file.bytes for h in self.held())

    def oldest_ms(self) -> int | None:
        times = [h.file.oldest_ms for h in self.held() if h.file.oldest_ms is not None]
        return min(times) if times else None

    def can_accept(self) -> bool:
        """Room below the bound and no write refused by the disk in the last few seconds."""
        recently_failed = time.monotonic() - self._failed_at < FAILED_WRITE_MEMORY_SECONDS
        return not recently_failed and self.bytes + self._pending_bytes + self._margin <= self.max_bytes

    # --- appending -----------------------------------------------------------------------------------------
    async def append(self, source: str, request_id: str, events: Sequence[Event], received_ms: int) -> None:
        """Return once the request is on disk; ``SpoolFull`` or ``SpoolUnavailable`` if it cannot be."""
        blob = encode_events(events)
        if self.bytes + self._pending_bytes + len(blob) > self.max_bytes:
            raise SpoolFull(
                f"the shim's spool holds its limit of {self.max_bytes} bytes while Redis is unavailable; "
                "the event was not accepted, retry later",
                headers={"Retry-After": RETRY_AFTER_SECONDS},
            )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append(((received_ms, source, request_id, blob), future))
        self._pending_bytes += len(blob)
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        await future

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._commit(batch))
            self._commits.add(task)  # a strong reference, or the task may be collected mid-flight
            task.add_done_callback(self._commits.discard)

    async def _commit(self, batch: list[tuple[Row, asyncio.Future[None]]]) -> None:
        rows = [row for row, _ in batch]
        try:
            await self.run(self.own.file.append, rows)
        except Exception as exc:  # noqa: BLE001 - sqlite3.Error or OSError: the disk refused; each request answers 503
            self._failed_at = time.monotonic()
            log.error(  # noqa: TRY400 - the disk's refusal, not a bug: its reason is enough
                "shim.spool.write_failed", path=str(self.own.file.path), error=str(exc), requests=len(rows)
            )
            refusal = SpoolUnavailable(
                f"Redis is unavailable and the shim's spool cannot be written ({exc}); the event was not "
                "accepted, retry later",
                headers={"Retry-After": RETRY_AFTER_SECONDS},
            )
            for _, future in batch:
                if not future.done():
                    future.set_exception(refusal)
            return
        finally:
            self._pending_bytes -= sum(len(row[3]) for row in rows)
        self.appended.set()
        for _, future in batch:
            if not future.done():
                future.set_result(None)

    # --- the drainer's side --------------------------------------------------------------------------------
    async def run(self, function: Callable[..., T], *args: object) -> T:
        """``function(*args)`` on the spool thread (every SQLite call goes through here)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def adopt(self) -> list[Held]:
        skip = {h.lock_path for h in self.held()}
        found = await self.run(self.directory.adopt, skip)
        for held in found:
            log.warning(
                "shim.spool.adopted",
                path=str(held.file.path),
                previous_pid=held.owner_pid,
                entries=held.file.depth,
                bytes=held.file.bytes,
            )
        self.adopted += found
        return found

    async def oldest(self, held: Held, limit: int) -> list[Entry]:
        return await self.run(held.file.oldest, limit)

    async def delete(self, held: Held, entries: Sequence[Entry]) -> None:
        await self.run(held.file.delete, entries)
        if held is not self.own and held.file.depth == 0:
            self.adopted.remove(held)
            await self.run(functools.partial(held.release, remove=True))

    async def aclose(self) -> None:
        """Release every file: empty ones are removed, the others stay for the next process to adopt."""
        if self._commits:
            await asyncio.gather(*self._commits, return_exceptions=True)
        for held in self.held():
            empty = held.file.depth == 0
            if not empty:
                log.warning(
                    "shim.spool.left",
                    path=str(held.file.path),
                    entries=held.file.depth,
                    bytes=held.file.bytes,
                )
            await self.run(functools.partial(held.release, remove=empty))
        self.adopted = []
        self._executor.shutdown(wait=True)
