"""Replay: run chosen handlers again for past events, from the task message the journal kept.

Each replayed event gets a new task message (a new task id) and a *replay record* under that task id naming
the handlers to run (``worker.keyspace.replay``). The ledger's begin script honours it: the named handlers
run even though their done markers say they succeeded, once per replay task (a Celery retry of the replay
keeps its task id, so a handler that succeeded in it is not run twice); every other handler is skipped.
The record, the enqueue and the "replayed" journal entry are one script (``worker/lua/replay.lua``). Replays
bypass the dedupe marker and the outbox: a replay lost with Redis is seen in the journal (no "attempt" after
"replayed") and run again.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from pydantic import ValidationError

from worker import keyspace, lua
from worker.delivery.routing import queue_for
from worker.delivery.taskmessage import TaskMessageBuilder, new_task_id
from worker.events import Event
from worker.execution.inboxrun import REAPPLY_LINE
from worker.execution.registry import REGISTRY
from worker.journal.config import JournalConfig, entry, now_ms
from worker.journal.reader import EventHistory, JournalReader
from worker.settings import Settings


def event_from_payload(payload: bytes) -> Event:
    """The event as the worker stored it at its first attempt (JSON)."""
    return Event.model_validate_json(payload)


@dataclass(frozen=True)
class Candidate:
    event_id: str
    event_type: str | None
    source: str | None
    handlers: tuple[str, ...]
    reason: str | None = None  # why it cannot be replayed; None: replayable
    event: Event | None = None

    @property
    def replayable(self) -> bool:
        return self.reason is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "type": self.event_type,
            "source": self.source,
            "handlers": list(self.handlers),
            "replayable": self.replayable,
            "reason": self.reason,
        }


def plan(
    reader: JournalReader, histories: Sequence[EventHistory], handlers: Sequence[str], settings: Settings
) -> list[Candidate]:
    """What a replay would do for each event: the handlers it would run, or why it cannot."""
    chosen = set(handlers)
    found: list[Candidate] = []
    for history in histories:
        payload = reader.payload(history.event_id)
        subscribed = [s.name for s in REGISTRY.handlers_for(history.type or "")]
        names = tuple(n for n in subscribed if not chosen or n in chosen)
        base = functools.partial(Candidate, history.event_id, history.type, history.source, names)
        if payload is None:
            kept = settings.journal_payload_seconds
            why = f"payload aged out (kept {kept} s, IMS_WORKER_JOURNAL_PAYLOAD_SECONDS) or was never stored"
            found.append(base(reason=why))
            continue
        try:
            event = event_from_payload(payload)
        except (ValueError, KeyError, IndexError, TypeError, ValidationError) as exc:
            found.append(base(reason=f"stored payload unreadable: {exc}"[:200]))
            continue
        if not names:
            why = (
                "no chosen handler subscribes to this type"
                if chosen
                else "no handler subscribes to this type"
            )
            found.append(base(reason=why))
            continue
        found.append(base(event=event))
    return found


class Replayer:
    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self._queue_for = queue_for
        self._settings = settings
        self._journal = JournalConfig.from_settings(settings)
        self._builder = TaskMessageBuilder()
        self._script = lua.register(client, "replay")

    def replay(
        self,
        candidates: Sequence[Candidate],
        *,
        rate: float,
        replay_id: str,
        progress: Callable[[Candidate, str], None] | None = None,
        reapply: bool = False,
    ) -> int:
        """Enqueue each replayable candidate at most ``rate`` per second; returns how many were enqueued.
        ``reapply``: handlers that use ``worker.inbox.claim`` apply their effect again (without it, their
        claim answers False for an event they applied: the replay is a no-op for them)."""
        interval = 1.0 / rate
        sent = 0
        started = time.monotonic()
        for candidate in candidates:
            if candidate.event is None:
                continue
            delay = started + sent * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            event = candidate.event
            task_id = new_task_id()
            message = self._builder.build(
                event, self._queue_for(self._settings, event.type, event.source), task_id
            )
            note = entry(
                "replayed",
                now_ms(),
                replay=replay_id,
                task=task_id,
                handlers=list(candidate.handlers),
                reapply=True if reapply else None,
            )
            record = [REAPPLY_LINE, *candidate.handlers] if reapply else list(candidate.handlers)
            keys = [*keyspace.JOURNAL_KEYS, message.queue, keyspace.replay(task_id)]
            ttl = self._settings.journal_retention_seconds
            args: list[bytes | str | int] = [
                self._journal.line(), message.payload, "\n".join(record), ttl, event.id, note
            ]  # fmt: skip
            self._script(keys=keys, args=args)
            sent += 1
            if progress is not None:
                progress(candidate, task_id)
        return sent
