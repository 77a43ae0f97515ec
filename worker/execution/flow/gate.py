"""Flow control around one handler run: ask Redis (one script call) whether the run may start now, keep its
holds alive while it runs, let go when it ends (``worker/lua/flow_*.lua``; the keys: ``worker.keyspace``).

``FlowGate.enter`` answers with a ``Permit`` (run it; ``with permit:`` releases its holds), the ``STALE``
permit (skip it: a newer event for its key was already handled), a ``policy.Held`` (defer it, by how long and
why) or a ``policy.Failure`` (the key callable raised). Handlers without options never reach Redis here.
Redis errors propagate: the task wrapper retries the event without spending an attempt.
"""

from __future__ import annotations

import hashlib
import random
import threading
import uuid
from dataclasses import dataclass
from types import TracebackType

import redis
import structlog

from worker import keyspace, lua
from worker.events import Event
from worker.execution.flow.options import MAX_KEY_CHARS, FlowOptions, key_value
from worker.execution.policy import Failure, FailureKind, Held
from worker.redact import redact_text

log = structlog.get_logger(__name__)

REASON_KEY_MISSING = "key missing"


@dataclass
class Permit:
    gate: FlowGate | None
    token: str = ""
    lock: str = ""
    newest: str = ""
    slots: str = ""
    occurred_ms: str = ""
    stale: bool = False

    def __enter__(self) -> Permit:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.gate is not None:
            self.gate.release(self, completed=exc is None)


FREE = Permit(gate=None)  # no options: nothing to hold, nothing to release
STALE = Permit(gate=None, stale=True)


def _key_part(value: str) -> str:
    if len(value) <= MAX_KEY_CHARS:
        return value
    return "sha1:" + hashlib.sha1(value.encode(), usedforsecurity=False).hexdigest()


class FlowGate:
    """Per process (made after the fork). A daemon thread renews the holds of the runs in progress."""

    def __init__(
        self, client: redis.Redis, *, lease_seconds: float, busy_retry_seconds: float, newest_ttl_seconds: int
    ) -> None:
        self._client = client
        self._lease_ms = int(lease_seconds * 1000)
        self._busy_retry = busy_retry_seconds
        self._newest_ttl = newest_ttl_seconds
        self._acquire = lua.register(client, "flow_acquire")
        self._release = lua.register(client, "flow_release")
        self._renew = lua.register(client, "flow_renew")
        self._held: dict[int, Permit] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def enter(
        self, handler: str, options: FlowOptions, event: Event, task_id: str
    ) -> Permit | Held | Failure:
        if not options.active:
            return FREE
        try:
            key = key_value(options.key, event) if options.key is not None else None
        except Exception as exc:  # noqa: BLE001 - the key callable is handler code: its failure is the handler's
            text = redact_text(str(exc))[:1000]
            return Failure(handler, FailureKind.ERROR, f"key of the event: {type(exc).__qualname__}: {text}")
        if options.key is not None and key is None:
            # Nothing to serialize on: run it unkeyed (the rate and concurrency still apply), and say so.
            log.warning("flow.key_missing", handler=handler, key=options.describe()["key"])
            self._client.hincrby(keyspace.FLOW_DEFERRALS, f"{handler}|{REASON_KEY_MISSING}", 1)
        # A token per run, not per task: two deliveries of one task message running at once (a restore racing
        # a live run) must exclude each other like any two runs; a dead run's hold lapses with its lease.
        permit = Permit(gate=self, token=f"{task_id}|{handler}|{uuid.uuid4().hex[:12]}")
        if key is not None:
            part = _key_part(key)
            permit.lock, permit.newest = (
                keyspace.flow_lock(handler, part),
                keyspace.flow_newest(handler, part),
            )
            if event.occurred_at is not None:
                permit.occurred_ms = str(int(event.occurred_at.timestamp() * 1000))
        if options.concurrency:
            permit.slots = keyspace.flow_slots(handler)
        keys = [
            permit.lock or keyspace.flow_lock(handler, ""),
            permit.newest or keyspace.flow_newest(handler, ""),
            permit.slots or keyspace.flow_slots(handler),
            keyspace.flow_rate(handler),
            keyspace.flow_booked(handler),
            keyspace.FLOW_DEFERRALS,
        ]
        args: list[str | int | float] = [
            permit.token,
            self._lease_ms,
            "1" if permit.lock else "0",
            permit.occurred_ms if options.stale else "",
            options.concurrency or 0,
            options.rate.interval_ms if options.rate else 0,
            handler,
            f"{task_id}|{handler}",
        ]
        verdict, wait_ms = (v.decode() if isinstance(v, bytes) else str(v) for v in self._acquire(keys, args))
        if verdict == "ok":
            self._hold(permit)
            return permit
        if verdict == "stale":
            return STALE
        if verdict == "rate limited":
            return Held(handler, verdict, countdown=max(0.001, int(wait_ms) / 1000))
        # Key busy or slots full: how long the holder keeps it is unknown; look again soon, spread out.
        return Held(handler, verdict, countdown=self._busy_retry * random.uniform(0.5, 1.5))  # noqa: S311

    def release(self, permit: Permit, *, completed: bool) -> None:
        with self._lock:
            self._held.pop(id(permit), None)
        if not (permit.lock or permit.slots):
            return
        keys = [permit.lock, permit.newest, permit.slots]
        args = [permit.token, permit.occurred_ms, "1" if completed else "0", self._newest_ttl]
        try:
            self._release(keys, args)
        except redis.RedisError as exc:
            # The handler's work is done and must not be redone for this; the holds lapse with their lease.
            log.warning("flow.release_failed", error=type(exc).__name__)

    def close(self) -> None:
        """Stop renewing (the holds then lapse with their lease, as if this process had died)."""
        self._wake.set()
        with self._lock:
            self._held.clear()

    def _hold(self, permit: Permit) -> None:
        if not (permit.lock or permit.slots):
            return  # a rate-only start holds nothing
        with self._lock:
            self._held[id(permit)] = permit
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._keep_alive, name="flow-leases", daemon=True)
                self._thread.start()

    def _keep_alive(self) -> None:
        interval = self._lease_ms / 3000
        while not self._wake.wait(interval):
            with self._lock:
                held = list(self._held.values())
            if not held:
                continue
            keys: list[str] = []
            owners: list[Permit] = []
            args: list[str | int] = [self._lease_ms]
            for permit in held:
                for kind, key in (("l", permit.lock), ("s", permit.slots)):
                    if key:
                        keys.append(key)
                        owners.append(permit)
                        args += [kind, permit.token]
            try:
                lost = [owners[int(i) - 1] for i in self._renew(keys, args)]
            except redis.RedisError as exc:
                log.warning("flow.renew_failed", error=type(exc).__name__, holds=len(keys))
                continue
            with self._lock:
                lost = [p for p in lost if id(p) in self._held]  # not those released meanwhile
            for permit in lost:
                # The run goes on (it cannot be stopped safely from here); another run may now overlap it.
                log.error("flow.lease_lost", token=permit.token, lock=permit.lock)
