"""Which handler is running for which event: set by the task wrapper around each handler call.

``worker.inbox.claim`` reads it so that a handler never names itself (the name is the one the ledger uses,
``module:qualname``), and it records what ``claim`` answered so that the worker can journal it afterwards
(``ims-worker trace`` shows whether the inbox confirmed the effect). A context variable: an ``async def``
handler's coroutine runs in a copy of the caller's context, so it sees the same run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

from worker.errors import Permanent, WorkerError


class InboxError(WorkerError):
    """The inbox could not answer (raised by ``claim``); the handler fails and the event is retried."""


class InboxMisuse(InboxError, Permanent):
    """``claim`` called where it cannot work: outside a handler, outside a transaction, with a connection it
    does not know, or for another event. Retrying cannot fix it: the event is dead-lettered with this reason
    (and can be redriven once the handler is fixed)."""


def _never() -> bool:
    return False


@dataclass
class Running:
    """One handler call: who, for which event, under which task; what ``claim`` answered during it."""

    handler: str
    event_id: str
    task_id: str
    # Whether this run is an operator's forced re-run (``ims-worker replay --reapply``). Asked only when the
    # inbox already has the row, so the common path costs nothing more.
    reapply: Callable[[], bool] = _never
    claims: list[str] = field(default_factory=list)  # "applied", "already applied", "re-applied"


_current: ContextVar[Running | None] = ContextVar("ims_worker_inbox_running", default=None)


@contextlib.contextmanager
def running(
    handler: str, event_id: str, task_id: str, *, reapply: Callable[[], bool] = _never
) -> Iterator[Running]:
    """The handler ``handler`` runs for ``event_id`` inside this block (the task wrapper; tests that call a
    handler function directly can use it too)."""
    run = Running(handler, event_id, task_id, reapply)
    token = _current.set(run)
    try:
        yield run
    finally:
        _current.reset(token)


def current(event_id: str) -> Running:
    """The running handler call, checked against the event ``claim`` was given."""
    run = _current.get()
    if run is None:
        raise InboxMisuse(
            "worker.inbox.claim was called outside a handler run: the worker sets the handler's name around "
            "each call (in a test, wrap the call in worker.inbox.running(handler, event_id, task_id))"
        )
    if event_id != run.event_id:
        raise InboxMisuse(
            f"worker.inbox.claim was given event {event_id!r} but handler {run.handler} is running for "
            f"{run.event_id!r}: claim the event the handler received"
        )
    return run
