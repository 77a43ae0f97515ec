"""``HandlerKit``: the registered handlers run for one event through the real task wrapper, in-process.

The event goes through the same task body the Celery worker runs (``worker.app``: ledger claims and done
markers, ``Retry``, ``Permanent``, attempts, the dead-letter store), called with Celery's ``apply()`` in this
process instead of through a broker and a worker process: retries follow one another at once (countdowns are
not waited) and the hard time limit does not apply (an ``async def`` handler is still cut at the soft one).
State lives in the Redis at ``redis_url``, which the kit's settings use for everything.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass, field
from typing import Any

from worker import keyspace
from worker.delivery.deadletter import DeadLetter, DeadLetterStore
from worker.events import Event
from worker.execution.registry import REGISTRY
from worker.redisconn import store_client
from worker.settings import Settings


@dataclass(frozen=True)
class Outcome:
    """What happened to one event: ``handled`` or ``dead-lettered``, after how many attempts."""

    event: Event
    status: str
    attempts: int
    done: dict[str, bool]  # handler name -> its done marker exists (it will not run again for this id)
    dead_letter: DeadLetter | None = None
    result: str = ""

    @property
    def handled(self) -> bool:
        return self.status == "handled"


@dataclass
class HandlerKit:
    """Runs the registered handlers (import your module, or ``load()`` it) for events, on ``redis_url``."""

    redis_url: str
    settings_overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        values: dict[str, Any] = {"task_max_attempts": 3, **self.settings_overrides}
        values.update(broker_url=self.redis_url, redis_url=self.redis_url)
        self.settings = Settings(_env_file=None, **values)  # the test's environment does not leak in
        from worker.app import create_app  # noqa: PLC0415 - Celery only once a kit is made

        self.app = create_app(self.settings)
        self._client = store_client(self.settings)

    def load(self, *modules: str) -> None:
        """Import handler modules (their ``@handler`` registrations are what ``run`` uses)."""
        for name in modules:
            importlib.import_module(name)

    def handlers_for(self, event_type: str) -> list[str]:
        return [sub.name for sub in REGISTRY.handlers_for(event_type)]

    def run(self, event: Event) -> Outcome:
        """Every attempt the real task would make, until the event is handled or dead-lettered."""
        if not REGISTRY.subscriptions:
            raise RuntimeError("no handlers are registered: import your handler module (or kit.load() it)")
        store = DeadLetterStore(self._client)
        before = {entry.id for entry in store.iter()}
        attempts = _AttemptCounter()
        from celery import signals  # noqa: PLC0415

        signals.task_prerun.connect(attempts.count, weak=False)
        try:
            result = self.app.tasks[event.type].apply(args=[event.model_dump(mode="json")])
        finally:
            signals.task_prerun.disconnect(attempts.count)
        if result.failed():
            raise RuntimeError(f"the task wrapper itself failed: {result.result!r}") from result.result
        new = [entry for entry in store.iter() if entry.id not in before and entry.event_id == event.id]
        done = {
            name: bool(self._client.exists(keyspace.done(event.id, name)))
            for name in self.handlers_for(event.type)
        }
        return Outcome(
            event=event,
            status="dead-lettered" if new else "handled",
            attempts=attempts.value,
            done=done,
            dead_letter=new[-1] if new else None,
            result=str(result.result),
        )

    def dead_letters(self) -> list[DeadLetter]:
        return DeadLetterStore(self._client).list()

    def close(self) -> None:
        self._client.close()
        self.app.close()


class _AttemptCounter:
    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def count(self, **_: Any) -> None:
        with self._lock:
            self.value += 1
