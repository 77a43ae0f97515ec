"""The in-flight ledger: a record of every task message the publisher enqueues, kept until its task finishes.

Why: kombu's Redis transport takes a message with BRPOP and only afterwards records it as unacked, in a
second command. If Redis stops between the two, or the BRPOP reply is lost with the connection, the message
exists nowhere, although the event was acknowledged upstream (MNS delete, HTTP 200). The chaos suite caught
exactly that on Redis restarts.

So the publish script also writes each message's record here, in the same atomic step as the enqueue: the
queue and the event, which the message refers to by id (``worker.delivery.taskmessage``): the task reads its
event from the record, and the record is all the sweeper needs to render the message again, byte for byte.
The task wrapper drops the record (the "copy" below) once the event reached a final outcome (handled or
dead-lettered); and a sweeper in every worker re-enqueues the copies whose task has not finished by their
deadline and whose message is nowhere. A re-enqueued copy is harmless: handlers that already succeeded for
the event are skipped by their done markers.

The sweep is one script (``worker/lua/outbox_sweep.lua``). "Nowhere" is decided without scanning the queue,
so that one script call stays short with a million messages queued (``bench/outbox_bench.py``). A copy's
deadline is its enqueue time plus the lease, so the overdue copies are the oldest messages, and the oldest
queued messages sit at the tail BRPOP takes from:

* held: kombu's ``unacked`` hash has the task's current delivery (``keyspace.held`` names it, renewed by the
  holder's heartbeat, ``worker.execution.lease``; a retry is a new delivery) or the copy's own: kombu
  restores those itself if their worker dies, so the outbox must not copy them meanwhile;
* queued: its task id is among the ``WINDOW`` messages at the tail, or the copy is younger (by more than the
  clock margin) than the oldest message in that window: then it is still waiting behind them;
* otherwise it was taken and lost, if it is still so after a grace of 1.5 heartbeats (a delivery taken since
  its holder's last beat is not recorded yet): it goes back at the tail (it is the oldest).

No sweep moves a deadline (it is what orders a copy against the window): copies stay overdue and are looked
at again by the next sweep. A retry is a new message: the worker gives the copy a fresh deadline when it sends
one (``Outbox.renew``).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

import redis
import structlog

from worker import keyspace, kombuadapter, lua

log = structlog.get_logger(__name__)

SWEEP_BATCH = 100  # overdue copies looked at by one script call
WINDOW = 64  # messages read from a queue's tail by one script call
CLOCK_MARGIN_MS = 5000  # publishers' clocks may differ by this much without a queued copy looking lost
# kombu's unacked hash under its default name (delivery tag -> message, for the messages a worker holds);
# the worker passes the name its broker channel uses (``kombuadapter.unacked_key``).
UNACKED_KEY = kombuadapter.unacked_key()
SWEEP_LOCK_KEY = keyspace.OUTBOX_SWEEPING


@dataclass(frozen=True)
class SweepStep:
    pushed: int  # copies re-enqueued
    seen: int  # copies looked at
    cursor: tuple[str, int]  # where the next call starts


def _now_ms() -> int:
    return int(time.time() * 1000)


class Outbox:
    """The worker side: forget finished copies, renew a retried one, re-enqueue lost ones."""

    def __init__(
        self,
        client: redis.Redis,
        deadline_seconds: int,
        *,
        window: int = WINDOW,
        grace_seconds: float | None = None,
        unacked_key: str = UNACKED_KEY,
    ) -> None:
        self._client = client
        self._unacked_key = unacked_key
        self._deadline_ms = deadline_seconds * 1000
        # A copy found nowhere is re-enqueued only if it is still nowhere this much later: a worker records
        # the deliveries it holds at its heartbeat (Settings.lease_heartbeat_seconds: min(10 s, lease / 4)),
        # so a message kombu just restored and another worker took is held under a tag not recorded yet.
        heartbeat = min(10.0, deadline_seconds / 4)
        self._grace_ms = int((1.5 * heartbeat if grace_seconds is None else grace_seconds) * 1000)
        self._window = window
        self._sweep = lua.register(client, "outbox_sweep")
        self.calls = 0  # script calls made by the last sweep (the benchmark reads it)

    def event_json(self, task_id: str) -> bytes | None:
        """The event a message enqueued by reference stands for, or None once its task reached a final
        outcome (the record is dropped then)."""
        record = self._client.hget(keyspace.OUTBOX, task_id)
        if record is None:
            return None
        return (record.encode() if isinstance(record, str) else record).partition(b"\n")[2]

    def finish(self, task_id: str) -> None:
        with self._client.pipeline(transaction=True) as pipe:
            pipe.hdel(keyspace.OUTBOX, task_id)
            pipe.zrem(keyspace.OUTBOX_DUE, task_id)
            pipe.execute()

    def renew(self, task_id: str) -> None:
        """The task's message was just enqueued again as a new delivery (a retry): the copy is as young."""
        self._client.zadd(keyspace.OUTBOX_DUE, {task_id: _now_ms() + self._deadline_ms}, xx=True)

    def sweep_once(self, cursor: tuple[str, int] = ("-inf", 0), limit: int = SWEEP_BATCH) -> SweepStep:
        """One bounded script call over the overdue copies from ``cursor`` (a deadline, and how many copies
        left in place at exactly that deadline to skip) on."""
        now = _now_ms()
        keys = [keyspace.OUTBOX, keyspace.OUTBOX_DUE, self._unacked_key]
        start, skip = cursor
        args: list[str | int] = [
            now,
            limit,
            start,
            skip,
            self._window,
            CLOCK_MARGIN_MS,
            keyspace.HELD_PREFIX,
            self._grace_ms,
            keyspace.SUSPECT_PREFIX,
        ]
        pushed, seen, last, kept = self._sweep(keys=keys, args=args)
        last_text = last.decode() if isinstance(last, bytes) else str(last)
        return SweepStep(int(pushed), int(seen), (last_text, int(kept)))

    def sweep(self) -> int:
        """Look at every copy whose deadline passed, one bounded call per batch; returns how many were lost
        and re-enqueued. One worker sweeps at a time; the others skip while it does."""
        token = uuid.uuid4().hex
        if not self._client.set(SWEEP_LOCK_KEY, token, nx=True, px=self._deadline_ms):
            return 0
        total, cursor = 0, ("-inf", 0)
        self.calls = 0
        try:
            while True:
                step = self.sweep_once(cursor)
                self.calls += 1
                total += step.pushed
                cursor = step.cursor
                if step.seen < SWEEP_BATCH:
                    return total
        finally:
            if self._client.get(SWEEP_LOCK_KEY) in (token, token.encode()):
                self._client.delete(SWEEP_LOCK_KEY)

    def in_flight(self) -> int:
        return int(self._client.hlen(keyspace.OUTBOX))


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
                log.warning("outbox.sweep_failed", error=type(exc).__name__)
                continue
            if pushed:
                log.warning("outbox.reenqueued", count=pushed)

    def stop(self) -> None:
        self.stopping.set()
