"""Redis keys that make delivery idempotent, and the per-handler ledger used by the task wrapper.

Two layers absorb duplicates (ARCHITECTURE.md, "Delivery semantics and their windows"):

* publish side: ``dedupe_key(event id)`` is set NX together with the enqueue, so an id is enqueued once per
  dedupe window (see ``worker.delivery.publish``);
* worker side: per (event id, handler) a *done* marker records success, so a redelivered or retried task
  skips handlers that already ran; a *claim* (with a TTL, owned by the task id) keeps two tasks for the same
  event from running one handler at the same time. A claim held by the same task id is taken over: that is a
  redelivery of our own message after a worker loss, and the previous holder is dead.

Each ledger operation is one Lua script, so a task costs one round trip to start plus one per handler.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import redis

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
from worker.journal.lua import JOURNAL_LUA

PREFIX = "ims-worker"
OUTBOX_KEY = f"{PREFIX}:outbox"  # hash: task id -> "<queue>\n<event JSON>" (see worker.delivery.outbox)
OUTBOX_DUE_KEY = f"{PREFIX}:outbox:due"  # sorted set: task id -> deadline (unix ms)


def dedupe_key(event_id: str) -> str:
    return f"{PREFIX}:dedupe:{event_id}"


def done_key(event_id: str, handler_name: str) -> str:
    return f"{PREFIX}:done:{event_id}:{handler_name}"


def claim_key(event_id: str, handler_name: str) -> str:
    return f"{PREFIX}:claim:{event_id}:{handler_name}"


def redeliveries_key(task_id: str) -> str:
    return f"{PREFIX}:redeliveries:{task_id}"


def failures_key(task_id: str) -> str:
    return f"{PREFIX}:failures:{task_id}"


def replay_key(task_id: str) -> str:
    """A replay's task: the handler names it forces, one per line (see ``worker.journal.replay``)."""
    return f"{PREFIX}:replay:{task_id}"


class HandlerState(IntEnum):
    DONE = 0  # succeeded before for this event id: skip
    RUN = 1  # claimed by this task: run it
    BUSY = 2  # claimed by another task that is running it right now: try again later


# KEYS: done_1..n, claim_1..n, redeliveries, outbox deadlines.
# ARGV: task id, claim ttl, redelivered (0/1), counter ttl, outbox deadline (unix ms).
# A running task pushes its outbox deadline out, so that the sweeper does not copy it while it runs.
# Journal: ARGV[6] event id, ARGV[7] attempt number, ARGV[8] business keys and ARGV[9] payload (first attempt
# only, else ""), last the journal settings line. A replay's task (see
# ``replay_key``) runs only the handlers it names, even if done before, once per replay task id.
_BEGIN = (
    (
        JOURNAL_LUA
        + """
local n = (#KEYS - 2) / 2
local out = {0}
local replay = redis.call('GET', '__REPLAY__' .. ARGV[1])
local skip = 'already done'
if replay then replay, skip = '\\n' .. replay .. '\\n', 'not replayed' end
local name_at = #'__DONE__' + #ARGV[6] + 2
redis.call('ZADD', KEYS[#KEYS], 'XX', ARGV[5], ARGV[1])
if ARGV[3] == '1' then
  out[1] = redis.call('INCR', KEYS[#KEYS - 1])
  redis.call('EXPIRE', KEYS[#KEYS - 1], ARGV[4])
end
local entries = {}
if J then
  local again, replayed = out[1] > 0 and out[1] or nil, replay and 1 or nil
  entries[1] = jent('attempt', {n = tonumber(ARGV[7]), task = ARGV[1],
    redelivered = again, replay = replayed})
end
for i = 1, n do
  local done = redis.call('EXISTS', KEYS[i]) == 1
  if replay then
    local forced = string.find(replay, '\\n' .. string.sub(KEYS[i], name_at) .. '\\n', 1, true)
    done = (not forced) or redis.call('GET', KEYS[i]) == ARGV[1]
  end
  if done then
    out[i + 1] = 0
    if J then entries[#entries + 1] = jent('skipped', {h = string.sub(KEYS[i], name_at), why = skip}) end
  else
    local holder = redis.call('GET', KEYS[n + i])
    if (not holder) or holder == ARGV[1] then
      redis.call('SET', KEYS[n + i], ARGV[1], 'EX', ARGV[2])
      out[i + 1] = 1
    else
      out[i + 1] = 2
    end
  end
end
if J then
  jadd(ARGV[6], unpack(entries))
  jindex(ARGV[6], ARGV[8], ARGV[9])
end
return out
"""
    )
    .replace("__REPLAY__", f"{PREFIX}:replay:")
    .replace("__DONE__", f"{PREFIX}:done:")
)

# KEYS: done, claim. ARGV: task id, done ttl; journal: event id, handler, ms, settings line.
_DONE = (
    JOURNAL_LUA
    + """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
if J then jadd(ARGV[3], jent('succeeded', {h = ARGV[4], ms = tonumber(ARGV[5])})) end
return 1
"""
)

# KEYS: claim_1..claim_n, failures, outbox, outbox deadlines.
# ARGV: task id, counter ttl, count a failed attempt (0/1), the event is handled: drop its outbox copy (0/1);
# journal: event id, metrics counters, the failed handlers' entries..., settings line.
_FINISH = (
    JOURNAL_LUA
    + """
if J then
  if #ARGV > 7 then
    jadd(ARGV[5], unpack(ARGV, 7, #ARGV - 1))
    jfailed(ARGV[5])
  end
  if ARGV[4] == '1' then jadd(ARGV[5], jent('handled', {})) end
end
jstats(ARGV[6])
local failures_key = KEYS[#KEYS - 2]
for i = 1, #KEYS - 3 do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
local failures = tonumber(redis.call('GET', failures_key) or '0')
if ARGV[3] == '1' then
  failures = redis.call('INCR', failures_key)
  redis.call('EXPIRE', failures_key, ARGV[2])
end
if ARGV[4] == '1' then
  redis.call('HDEL', KEYS[#KEYS - 1], ARGV[1])
  redis.call('ZREM', KEYS[#KEYS], ARGV[1])
end
return failures
"""
)


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
        self._begin = client.register_script(_BEGIN)
        self._done = client.register_script(_DONE)
        self._finish = client.register_script(_FINISH)

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
        keys = [done_key(event_id, name) for name in handler_names]
        keys += [claim_key(event_id, name) for name in handler_names]
        keys += (redeliveries_key(task_id), OUTBOX_DUE_KEY)
        deadline = int(time.time() * 1000) + self._outbox_deadline_ms
        args: list[str | int] = [
            task_id, self._claim_seconds, "1" if redelivered else "0", self._done_ttl, deadline,
            event_id, attempt, *self._index(event), self._journal.tail(),
        ]  # fmt: skip
        reply = self._begin(keys=keys, args=args)
        return LedgerStart(redeliveries=int(reply[0]), states=tuple(HandlerState(int(s)) for s in reply[1:]))

    def _index(self, event: Event | None) -> tuple[str, str]:
        if event is None or not self._journal.enabled:
            return "", ""
        return index_blob(event), payload_json(event) if self._journal.payload_seconds else ""

    def mark_done(self, event_id: str, task_id: str, handler_name: str, *, ms: float = 0.0) -> None:
        keys = [done_key(event_id, handler_name), claim_key(event_id, handler_name)]
        args: list[str | int | float] = [
            task_id, self._done_ttl, event_id, handler_name, round(ms, 2), self._journal.tail()
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
        keys = [claim_key(event_id, name) for name in handler_names]
        keys += (failures_key(task_id), OUTBOX_KEY, OUTBOX_DUE_KEY)
        flags = ["1" if failed else "0", "1" if handled else "0"]
        now = now_ms()
        journal = [error_entry(now, name, error) for name, error in errors] if self._journal.enabled else []
        args: list[str | int] = [task_id, self._done_ttl, *flags, event_id, stats_blob(stats or {}), *journal]
        return int(self._finish(keys=keys, args=[*args, self._journal.tail(now)]))

    def is_done(self, event_id: str, handler_name: str) -> bool:
        return bool(self._client.exists(done_key(event_id, handler_name)))
