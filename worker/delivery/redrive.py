"""Redrive: put dead letters back on the broker through the normal publishing path.

An entry is rebuilt from the normalized event stored with it; failing that (entries the consumer stored for
bodies it could not read), the raw body is normalized again, which works once the parser has learnt the
format. An entry that still yields no event is kept and reported. Redrives bypass the dedupe marker (the id
was enqueued once already) but not the handler ledger: handlers that succeeded for the id are not run again.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import ValidationError

from worker.delivery.deadletter import DeadLetter, DeadLetterStore
from worker.delivery.publish import Publisher, PublishResult
from worker.errors import WorkerError
from worker.events import Event, Transport
from worker.providers import normalize


class CannotRedrive(WorkerError):
    """Raised when no event can be rebuilt from a dead letter; the entry stays in the store."""


@dataclass(frozen=True)
class RedriveOutcome:
    entry: DeadLetter
    ok: bool
    message: str
    results: list[PublishResult] = field(default_factory=list)


def rebuild_events(entry: DeadLetter) -> list[Event]:
    if entry.event_json:
        try:
            return [Event.model_validate_json(entry.event_json)]
        except ValidationError as exc:
            raise CannotRedrive(f"stored event no longer validates: {exc.error_count()} error(s)") from exc
    transport = Transport.model_validate(entry.transport) if entry.transport else None
    try:
        events = normalize(entry.source, entry.raw, transport=transport)
    except (WorkerError, ValueError, NotImplementedError) as exc:
        raise CannotRedrive(f"no event can be rebuilt from the raw body ({entry.reason}): {exc}") from exc
    if entry.event_id:
        events = [e for e in events if e.id == entry.event_id] or events
    if not events:
        raise CannotRedrive("the raw body normalizes to no events")
    return events


def redrive(
    store: DeadLetterStore,
    publisher: Publisher,
    entries: Iterable[DeadLetter],
    *,
    rate: float | None = None,
) -> list[RedriveOutcome]:
    """Republish each entry, then delete it. ``BrokerUnavailable`` stops the run (the entry is kept). With
    ``rate``, at most that many entries per second (a redrive of thousands must not flood the workers)."""
    outcomes: list[RedriveOutcome] = []
    started = time.monotonic()
    for entry in entries:
        if rate is not None:
            due = started + len(outcomes) / rate
            time.sleep(max(0.0, due - time.monotonic()))
        try:
            events = rebuild_events(entry)
        except CannotRedrive as exc:
            outcomes.append(RedriveOutcome(entry, ok=False, message=str(exc)))
            continue
        results = publisher.publish(events, bypass_dedupe=True)
        store.delete([entry.id])
        types = ", ".join(sorted({r.type for r in results}))
        outcomes.append(
            RedriveOutcome(entry, ok=True, message=f"republished {len(results)} ({types})", results=results)
        )
    return outcomes
