"""The in-flight ledger: a copy of every task message the publisher enqueues, kept until its task finishes.

Why: kombu's Redis transport takes a message with BRPOP and only afterwards records it as unacked, in a
second command. If Redis stops between the two, or the BRPOP reply is lost with the connection, the message
exists nowhere, although the event was acknowledged upstream (MNS delete, HTTP 200). The chaos suite caught
exactly that on Redis restarts.

So the publish script also writes each message here, in the same atomic step as the enqueue; the task wrapper
drops the copy once the event reached a final outcome (handled or dead-lettered); and a sweeper in every
worker re-enqueues the copies whose task has not finished by their deadline. A re-enqueued copy is harmless:
handlers that already succeeded for the event are skipped by their done markers, and a task pushes its
deadline out when it starts (the ledger's begin script), so it is not copied while it runs.
"""

from __future__ import annotations

import threading
import time

import redis
import structlog

from worker.dedupe import OUTBOX_DUE_KEY, OUTBOX_KEY

log = structlog.get_logger(__name__)

SWEEP_BATCH = 100
UNACKED_KEY = "unacked"  # kombu's Redis transport: delivery tag -> message, for messages a worker holds

# KEYS: outbox, due, kombu's unacked hash.  ARGV: now (ms), next deadline (ms), limit.
# A copy past its deadline is re-enqueued only if its message is nowhere: not waiting in its queue (a backlog
# older than the deadline is not a loss, and copying it would feed the backlog) and not held by a worker
# (kombu restores those itself). Either way its deadline moves out. Returns how many were re-enqueued.
_SWEEP = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local pushed = 0
for _, id in ipairs(ids) do
  local entry = redis.call('HGET', KEYS[1], id)
  if entry then
    local cut = string.find(entry, '\\n', 1, true)
    local queue, message = string.sub(entry, 1, cut - 1), string.sub(entry, cut + 1)
    local tag = string.match(message, '"delivery_tag": "([^"]+)"')
    local queued = redis.call('LPOS', queue, message)
    local held = tag and redis.call('HEXISTS', KEYS[3], tag) == 1
    if not queued and not held then
      redis.call('LPUSH', queue, message)
      pushed = pushed + 1
    end
    redis.call('ZADD', KEYS[2], ARGV[2], id)
  else
    redis.call('ZREM', KEYS[2], id)
  end
end
return pushed
"""


def _now_ms() -> int:
    return int(time.time() * 1000)


class Outbox:
    """The worker side: keep a running task's deadline ahead, forget finished ones, re-enqueue lost ones."""

    def __init__(self, client: redis.Redis, deadline_seconds: int) -> None:
        self._client = client
        self._deadline_ms = deadline_seconds * 1000
        self._sweep = client.register_script(_SWEEP)

    def finish(self, task_id: str) -> None:
        with self._client.pipeline(transaction=True) as pipe:
            pipe.hdel(OUTBOX_KEY, task_id)
            pipe.zrem(OUTBOX_DUE_KEY, task_id)
            pipe.execute()

    def sweep(self) -> int:
        """Look at every copy whose deadline passed (each batch moves them out); returns how many were lost
        and re-enqueued."""
        now = _now_ms()
        keys = [OUTBOX_KEY, OUTBOX_DUE_KEY, UNACKED_KEY]
        total = 0
        while True:
            total += int(self._sweep(keys=keys, args=[now, now + self._deadline_ms, SWEEP_BATCH]))
            if not self._client.zcount(OUTBOX_DUE_KEY, "-inf", now):
                return total

    def in_flight(self) -> int:
        return int(self._client.hlen(OUTBOX_KEY))


class Sweeper(threading.Thread):
    """Runs ``Outbox.sweep`` every ``interval`` seconds in a worker's main process until stopped."""

    def __init__(self, outbox: Outbox, interval: float) -> None:
        super().__init__(name="outbox-sweeper", daemon=True)
        self.outbox = outbox
        self.interval = interval
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                pushed = self.outbox.sweep()
            except redis.RedisError as exc:
                log.warning("outbox sweep failed", error=type(exc).__name__)
                continue
            if pushed:
                log.warning("outbox re-enqueued task messages that never finished", count=pushed)

    def stop(self) -> None:
        self.stopping.set()
