"""The per-handler ledger of the task wrapper: what makes running an event's handlers idempotent.

Two layers absorb duplicates (ARCHITECTURE.md, "Delivery semantics and their windows"):

* publish side: ``keyspace.dedupe(event id)`` is set NX together with the enqueue, so an id is enqueued once
  per dedupe window (see ``worker.delivery.publish``);
* worker side: per (event id, handler) a *done* marker records success, so a redelivered or retried task
  skips handlers that already ran; a *claim* (with a TTL, owned by the task id) keeps two tasks for the same
  event from running one handler at the same time. A claim held by the same task id is taken over: that is a
  redelivery of our own message after a worker loss, and the previous holder is dead.

Each ledger operation is one Lua script (``worker/lua/ledger_*.lua``), so a task costs one round trip to start
plus one per handler.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import redis

from worker import keyspace, lua
from worker.events import Event
from worker.journal.config import (
    OFF,
    JournalConfig,
    error_entry,
    index_blob,
    now_ms,
    payload_json,
    stats_blob,
)


class HandlerState(IntEnum):
    DONE = 0  # succeeded before for this event id: skip
    RUN = 1  # claimed by this task: run it
    BUSY = 2  # claimed by another task that is running it right now: try again later


@dataclass(frozen=True)
class LedgerStart:
    redeliveries: int  # how many times this task message came back after a worker loss (0 on first delivery)
    states: tuple[HandlerState, ...]  # one per handler name, in the order asked


class HandlerLedger:
    """Done markers, claims and per-task counters. Redis errors propagate: the task wrapper retries."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        claim_seconds: int,
        done_ttl_seconds: int,
        outbox_deadline_seconds: int,
        journal: JournalConfig = OFF,
    ) -> None:
        self._client = client
        self._journal = journal
        self._claim_seconds = claim_seconds
        self._done_ttl = done_ttl_seconds
        self._outbox_deadline_ms = outbox_deadline_seconds * 1000
        self._begin = lua.register(client, "ledger_begin")
        self._done = lua.register(client, "ledger_done")
        self._finish = lua.register(client, "ledger_finish")

    def begin(
        self,
        event_id: str,
        task_id: str,
        handler_names: Sequence[str],
        *,
        redelivered: bool,
        attempt: int = 1,
        event: Event | None = None,
    ) -> LedgerStart:
        """Count a redelivery, skip handlers already done, claim the rest (or report them busy). ``event``
        (on a first attempt): the journal indexes its business keys and keeps its payload for replay."""
        keys = [
            *keyspace.JOURNAL_KEYS,
            keyspace.redeliveries(task_id),
            keyspace.OUTBOX_DUE,
            keyspace.replay(task_id),
        ]
        keys += [keyspace.done(event_id, name) for name in handler_names]
        keys += [keyspace.claim(event_id, name) for name in handler_names]
        deadline = int(time.time() * 1000) + self._outbox_deadline_ms
        args: list[str | int] = [
            self._journal.line(), task_id, self._claim_seconds, "1" if redelivered else "0", self._done_ttl,
            deadline, event_id, attempt, *self._index(event), *handler_names,
        ]  # fmt: skip
        reply = self._begin(keys=keys, args=args)
        return LedgerStart(redeliveries=int(reply[0]), states=tuple(HandlerState(int(s)) for s in reply[1:]))

    def _index(self, event: Event | None) -> tuple[str, str]:
        if event is None or not self._journal.enabled:
            return "", ""
        return index_blob(event), payload_json(event) if self._journal.payload_seconds else ""

    def mark_done(self, event_id: str, task_id: str, handler_name: str, *, ms: float = 0.0) -> None:
        keys = [
            *keyspace.JOURNAL_KEYS,
            keyspace.done(event_id, handler_name),
            keyspace.claim(event_id, handler_name),
        ]
        args: list[str | int | float] = [
            self._journal.line(), task_id, self._done_ttl, event_id, handler_name, round(ms, 2)
        ]  # fmt: skip
        self._done(keys=keys, args=args)

    def finish(
        self,
        event_id: str,
        task_id: str,
        handler_names: Sequence[str],
        *,
        failed: bool,
        handled: bool = False,
        errors: Sequence[tuple[str, str]] = (),
        stats: dict[str, float] | None = None,
    ) -> int:
        """Release this task's claims; count a failed attempt if ``failed``; with ``handled`` (nothing left to
        do for this event) drop the task's outbox copy. Returns the failed attempts. ``errors`` (handler,
        summary) are journaled, ``stats`` added to the metrics counters."""
        keys = [*keyspace.JOURNAL_KEYS, keyspace.failures(task_id), keyspace.OUTBOX, keyspace.OUTBOX_DUE]
        keys += [keyspace.claim(event_id, name) for name in handler_names]
        flags = ["1" if failed else "0", "1" if handled else "0"]
        now = now_ms()
        journal = [error_entry(now, name, error) for name, error in errors] if self._journal.enabled else []
        args: list[str | int] = [
            self._journal.line(now), task_id, self._done_ttl, *flags, event_id, stats_blob(stats or {}),
            *journal,
        ]  # fmt: skip
        return int(self._finish(keys=keys, args=args))

    def is_done(self, event_id: str, handler_name: str) -> bool:
        return bool(self._client.exists(keyspace.done(event_id, handler_name)))
