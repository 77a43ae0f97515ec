"""The task wrapper's per-process Redis resources, made lazily after the prefork fork (never shared).

Under the threads pool every thread of the process uses the same ones: redis-py clients take a connection
from their pool per command (thread-safe), the ledger, journal and dead-letter stores keep no per-task state,
and the flow gate keeps each run's holds in its own ``Permit`` (its renewal thread locks the set of them)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import redis

from worker.delivery.deadletter import DeadLetterStore
from worker.delivery.outbox import Outbox
from worker.execution.flow.gate import FlowGate
from worker.execution.ledger import HandlerLedger
from worker.journal.config import JournalConfig
from worker.journal.writer import JournalWriter
from worker.redisconn import store_client
from worker.settings import Settings


@dataclass
class Runtime:
    """Per-process Redis resources (made after the prefork fork, never shared across processes)."""

    pid: int
    client: redis.Redis  # the store (the few reads that need no script: a replay's --reapply record)
    ledger: HandlerLedger
    deadletters: DeadLetterStore
    outbox: Outbox
    journal: JournalWriter
    flow: FlowGate


_runtime: Runtime | None = None
_lock = threading.Lock()  # pool threads starting at once make one set, not one each


def runtime(settings: Settings) -> Runtime:
    made = _runtime
    if made is not None and made.pid == os.getpid():
        return made
    with _lock:
        return _make(settings)


def _make(settings: Settings) -> Runtime:
    global _runtime  # noqa: PLW0603 - one lazily made set of connections per process
    if _runtime is None or _runtime.pid != os.getpid():
        client = store_client(settings)
        journal = JournalConfig.from_settings(settings)
        ledger = HandlerLedger(
            client,
            claim_seconds=settings.handler_claim_seconds,
            done_ttl_seconds=settings.handler_done_ttl_seconds,
            outbox_deadline_seconds=settings.visibility_timeout,
            journal=journal,
        )
        _runtime = Runtime(
            pid=os.getpid(),
            client=client,
            ledger=ledger,
            deadletters=DeadLetterStore(client, journal=journal),
            outbox=Outbox(client, settings.visibility_timeout),
            journal=JournalWriter(client, journal),
            flow=FlowGate(
                client,
                lease_seconds=settings.flow_lease_seconds,
                busy_retry_seconds=settings.flow_busy_retry_seconds,
                newest_ttl_seconds=settings.handler_done_ttl_seconds,
            ),
        )
    return _runtime


def current_runtime() -> Runtime | None:
    """This process's resources if already made (the retry path must not open connections to say so)."""
    return _runtime
