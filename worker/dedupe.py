"""Redis keys that make delivery idempotent, and the per-handler ledger used by the task wrapper.

Two layers absorb duplicates (DESIGN.md, "Delivery semantics"):

* publish side: ``dedupe_key(event id)`` is set NX together with the enqueue, so an id is enqueued once per
  dedupe window (see ``worker.publish``);
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

PREFIX = "ims-worker"
OUTBOX_KEY = f"{PREFIX}:outbox"  # hash: task id -> "<queue>\n<task message>" (see worker.outbox)
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


class HandlerState(IntEnum):
    DONE = 0  # succeeded before for this event id: skip
    RUN = 1  # claimed by this task: run it
    BUSY = 2  # claimed by another task that is running it right now: try again later


# KEYS: done_1..n, claim_1..n, redeliveries, outbox deadlines.
# ARGV: task id, claim ttl, redelivered (0/1), counter ttl, outbox deadline (unix ms).
# A running task pushes its outbox deadline out, so that the sweeper does not copy it while it runs.
_BEGIN = """
local n = (#KEYS - 2) / 2
local out = {0}
redis.call('ZADD', KEYS[#KEYS], 'XX', ARGV[5], ARGV[1])
if ARGV[3] == '1' then
  out[1] = redis.call('INCR', KEYS[#KEYS - 1])
  redis.call('EXPIRE', KEYS[#KEYS - 1], ARGV[4])
end
for i = 1, n do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    out[i + 1] = 0
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
return out
"""

# KEYS: done, claim. ARGV: task id, done ttl.
_DONE = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
"""

# KEYS: claim_1..claim_n, failures, outbox, outbox deadlines.
# ARGV: task id, counter ttl, count a failed attempt (0/1), the event is handled: drop its outbox copy (0/1).
_FINISH = """
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


@dataclass(frozen=True)
class LedgerStart:
    redeliveries: int  # how many times this task message came back after a worker loss (0 on first delivery)
    states: tuple[HandlerState, ...]  # one per handler name, in the order asked


class HandlerLedger:
    """Done markers, claims and per-task counters. Redis errors propagate: the task wrapper retries."""

    def __init__(
        self, client: redis.Redis, *, claim_seconds: int, done_ttl_seconds: int, outbox_deadline_seconds: int
    ) -> None:
        self._client = client
        self._claim_seconds = claim_seconds
        self._done_ttl = done_ttl_seconds
        self._outbox_deadline_ms = outbox_deadline_seconds * 1000
        self._begin = client.register_script(_BEGIN)
        self._done = client.register_script(_DONE)
        self._finish = client.register_script(_FINISH)

    def begin(
        self, event_id: str, task_id: str, handler_names: Sequence[str], *, redelivered: bool
    ) -> LedgerStart:
        """Count a redelivery, skip handlers already done, claim the rest (or report them busy)."""
        keys = [done_key(event_id, name) for name in handler_names]
        keys += [claim_key(event_id, name) for name in handler_names]
        keys += (redeliveries_key(task_id), OUTBOX_DUE_KEY)
        deadline = int(time.time() * 1000) + self._outbox_deadline_ms
        args: list[str | int] = [
            task_id, self._claim_seconds, "1" if redelivered else "0", self._done_ttl, deadline
        ]  # fmt: skip
        reply = self._begin(keys=keys, args=args)
        return LedgerStart(redeliveries=int(reply[0]), states=tuple(HandlerState(int(s)) for s in reply[1:]))

    def mark_done(self, event_id: str, task_id: str, handler_name: str) -> None:
        keys = [done_key(event_id, handler_name), claim_key(event_id, handler_name)]
        self._done(keys=keys, args=[task_id, self._done_ttl])

    def finish(
        self,
        event_id: str,
        task_id: str,
        handler_names: Sequence[str],
        *,
        failed: bool,
        handled: bool = False,
    ) -> int:
        """Release this task's claims; count a failed attempt if ``failed``; with ``handled`` (nothing left to
        do for this event) drop the task's outbox copy. Returns the failed attempts."""
        keys = [claim_key(event_id, name) for name in handler_names]
        keys += (failures_key(task_id), OUTBOX_KEY, OUTBOX_DUE_KEY)
        flags = ["1" if failed else "0", "1" if handled else "0"]
        return int(self._finish(keys=keys, args=[task_id, self._done_ttl, *flags]))

    def is_done(self, event_id: str, handler_name: str) -> bool:
        return bool(self._client.exists(done_key(event_id, handler_name)))
