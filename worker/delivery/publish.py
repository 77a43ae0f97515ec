"""Publishing: events -> Celery task messages on the broker, skipping event ids already enqueued.

With a Redis broker that also holds the dedupe markers, a whole batch is one round trip: a Lua script
(``worker/lua/publish.lua``) sets
each event's dedupe marker NX and, only where it was newly set, LPUSHes the task message (by reference,
``worker.delivery.taskmessage``) onto the event's queue and keeps the event in the message's outbox record.
Marker, message and record are written atomically, so a crash can neither enqueue without marking nor mark
without enqueuing.

Any other broker (``amqp://``, or Redis markers kept on a different server than the queues) goes in two
steps: mark NX in Redis, send the new ones, and remove the markers of whatever could not be sent, so that the
caller's retry (MNS redelivery, provider retry) is not mistaken for a duplicate.

Callers get one ``PublishResult`` per event, or ``BrokerUnavailable``: then they must not ack upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio
import structlog

from worker import keyspace, kombuadapter, lua
from worker.delivery.replication import run_replicated, run_replicated_async
from worker.delivery.routing import queue_for
from worker.delivery.sender import KombuSender
from worker.delivery.taskmessage import encode_event, new_task_id
from worker.errors import BrokerUnavailable
from worker.events import Event
from worker.journal.config import JournalConfig, now_ms, received_blob
from worker.providers import dedupe_ttl
from worker.redact import redact_text, redact_url
from worker.redisconn import REDIS_ERRORS, async_store_client, store_client
from worker.settings import Settings

log = structlog.get_logger(__name__)

# Batches larger than this are split, so one script never holds Redis for long (a redrive may pass thousands).
SCRIPT_CHUNK = 256


@dataclass(frozen=True)
class PublishResult:
    event_id: str
    type: str
    enqueued: bool  # False: a duplicate of an id already enqueued within the dedupe window


class _Batch:
    """The KEYS/ARGV of ``worker/lua/publish.lua`` for a batch, built once and shared by the sync and async
    publishers."""

    def __init__(
        self,
        settings: Settings,
        events: Sequence[Event],
        bypass: bool,
        spooled_ms: Sequence[int] | None = None,
    ):
        journal = JournalConfig.from_settings(settings)
        now, kind = (
            now_ms(),
            "redriven" if bypass else "received",
        )  # a redrive is the only caller that bypasses
        deadline_ms = int((time.time() + settings.visibility_timeout) * 1000)
        self.keys: list[str] = [*keyspace.JOURNAL_KEYS, keyspace.OUTBOX, keyspace.OUTBOX_DUE]
        self.args: list[Any] = [journal.line(now), "1" if bypass else "0", deadline_ms]
        waits = spooled_ms if spooled_ms is not None else [None] * len(events)
        for event, waited in zip(events, waits, strict=True):
            self.keys += (keyspace.dedupe(event.id), queue_for(settings, event.type, event.source))
            blob = received_blob(event, now, kind, waited) if journal.enabled else ""
            self.args += (new_task_id(), dedupe_ttl(settings, event.source), encode_event(event), blob)


def _results(events: Sequence[Event], flags: Sequence[Any]) -> list[PublishResult]:
    return [PublishResult(e.id, e.type, bool(int(f))) for e, f in zip(events, flags, strict=True)]


def _unavailable(what: str, url: str, exc: BaseException) -> BrokerUnavailable:
    detail = redact_text(str(exc)) or type(exc).__name__
    return BrokerUnavailable(f"{what} at {redact_url(url)} is unreachable: {detail}")


def _chunks(events: Sequence[Event]) -> list[Sequence[Event]]:
    return [events[i : i + SCRIPT_CHUNK] for i in range(0, len(events), SCRIPT_CHUNK)]


def _single_script(settings: Settings) -> bool:
    # The script needs the markers and the queues on one Redis server and database.
    return settings.broker_is_redis and settings.effective_redis_url == settings.broker_url


class Publisher:
    """Synchronous publisher; the MNS consumer makes one per thread (cheap, and not meant to be shared)."""

    def __init__(self, settings: Settings) -> None:
        kombuadapter.check_versions()  # the messages it renders are Celery's and kombu's wire format
        self._settings = settings
        self._redis_url = settings.effective_redis_url
        self._redis = store_client(settings)
        self._script = lua.register(self._redis, "publish")
        self._sender: KombuSender | None = None
        self._journal = JournalConfig.from_settings(settings)
        if not _single_script(settings):
            self._sender = KombuSender(settings)
            self._journal_received = lua.register(self._redis, "journal_received")

    def publish(self, events: Sequence[Event], *, bypass_dedupe: bool = False) -> list[PublishResult]:
        """Enqueue each event whose id is not marked yet. ``bypass_dedupe`` is for redrives only."""
        results: list[PublishResult] = []
        for chunk in _chunks(events):
            if self._sender is None:
                results += self._publish_script(chunk, bypass_dedupe)
            else:
                results += self._publish_two_step(chunk, bypass_dedupe)
        return results

    def _publish_script(self, events: Sequence[Event], bypass: bool) -> list[PublishResult]:
        batch = _Batch(self._settings, events, bypass)
        wait = self._settings.wait_replicas
        try:
            if wait:
                timeout = self._settings.redis_wait_timeout_ms
                flags = run_replicated(
                    self._redis, self._script, batch.keys, batch.args, replicas=wait, timeout_ms=timeout
                )
            else:
                flags = self._script(keys=batch.keys, args=batch.args)
        except REDIS_ERRORS as exc:
            raise _unavailable("Redis broker", self._redis_url, exc) from exc
        return _results(events, flags)

    def _publish_two_step(self, events: Sequence[Event], bypass: bool) -> list[PublishResult]:
        assert self._sender is not None
        task_ids = [new_task_id() for _ in events]
        try:
            with self._redis.pipeline(transaction=False) as pipe:
                for event in events:
                    ttl = dedupe_ttl(self._settings, event.source)
                    pipe.set(keyspace.dedupe(event.id), 1, ex=ttl, nx=not bypass)
                fresh = [bool(flag) for flag in pipe.execute()]
        except REDIS_ERRORS as exc:
            raise _unavailable("Redis (dedupe markers)", self._redis_url, exc) from exc
        to_send = [(e, tid) for e, tid, new in zip(events, task_ids, fresh, strict=True) if new]
        try:
            self._sender.send(to_send)
        except BrokerUnavailable:
            self._forget([e for e, _ in to_send])
            raise
        self._journal_receipt(events, fresh, bypass)
        return [PublishResult(e.id, e.type, new) for e, new in zip(events, fresh, strict=True)]

    def _journal_receipt(self, events: Sequence[Event], fresh: Sequence[bool], bypass: bool) -> None:
        """What publish.lua journals at receipt, for the two-step path (amqp://): the events are sent, so a
        journal Redis that fails now costs their history, not the events (a warning says so)."""
        if not self._journal.enabled:
            return
        now, kind = now_ms(), "redriven" if bypass else "received"
        args: list[str] = [self._journal.line(now)]
        for event, new in zip(events, fresh, strict=True):
            args += ["1" if new else "0", received_blob(event, now, kind)]
        try:
            self._journal_received(keys=keyspace.JOURNAL_KEYS, args=args)
        except REDIS_ERRORS as exc:
            log.warning("publish.journal_failed", events=len(events), error=redact_text(str(exc)))

    def _forget(self, events: Sequence[Event]) -> None:
        # Best effort: if Redis is gone too, the markers expire and the upstream retry is then enqueued.
        with contextlib.suppress(*REDIS_ERRORS):
            self._redis.delete(*[keyspace.dedupe(e.id) for e in events])

    def ping(self) -> bool:
        try:
            return bool(self._redis.ping()) and (self._sender is None or self._sender.ping())
        except REDIS_ERRORS:
            return False

    def close(self) -> None:
        self._redis.close()
        if self._sender is not None:
            self._sender.close()


class AsyncPublisher:
    """The ASGI shim's publisher: redis.asyncio for the one-script path, a worker thread for anything else."""

    def __init__(self, settings: Settings) -> None:
        kombuadapter.check_versions()
        self._settings = settings
        self._redis_url = settings.effective_redis_url
        self._redis: redis.asyncio.Redis = async_store_client(settings)
        self._script = lua.register(self._redis, "publish")
        self._fallback: Publisher | None = None if _single_script(settings) else Publisher(settings)

    async def publish(
        self,
        events: Sequence[Event],
        *,
        bypass_dedupe: bool = False,
        spooled_ms: Sequence[int] | None = None,
    ) -> list[PublishResult]:
        """``spooled_ms``: per event, how long it waited in the shim's spool (journaled with its receipt)."""
        if self._fallback is not None:
            return await asyncio.to_thread(self._fallback.publish, events, bypass_dedupe=bypass_dedupe)
        results: list[PublishResult] = []
        for start, chunk in zip(range(0, len(events), SCRIPT_CHUNK), _chunks(events), strict=True):
            waits = spooled_ms[start : start + len(chunk)] if spooled_ms is not None else None
            batch = _Batch(self._settings, chunk, bypass_dedupe, waits)
            wait, timeout = self._settings.wait_replicas, self._settings.redis_wait_timeout_ms
            try:
                if wait:
                    flags = await run_replicated_async(
                        self._redis, self._script, batch.keys, batch.args, replicas=wait, timeout_ms=timeout
                    )
                else:
                    flags = await self._script(keys=batch.keys, args=batch.args)
            except REDIS_ERRORS as exc:
                raise _unavailable("Redis broker", self._redis_url, exc) from exc
            results += _results(chunk, flags)
        return results

    async def ping(self) -> bool:
        if self._fallback is not None:
            return await asyncio.to_thread(self._fallback.ping)
        try:
            return bool(await self._redis.ping())
        except REDIS_ERRORS:
            return False

    async def aclose(self) -> None:
        await self._redis.aclose()
        if self._fallback is not None:
            await asyncio.to_thread(self._fallback.close)
