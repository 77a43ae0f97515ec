"""The task outcome policy: what one task run ends in, decided from facts alone (no Redis, no Celery).

``worker.execution.tasks`` gathers the facts (ledger states, what each handler did, the counters) and
executes the
``Outcome`` this module returns, so every rule below is testable in-process, table by table:

* the message came back after a worker loss more than ``max_redeliveries`` times -> dead letter (checked
  before anything runs: ``admit``);
* every handler done -> ``Done``;
* a handler raised ``Permanent`` -> dead letter; failed attempts reached ``task_max_attempts`` -> dead letter;
* other failures -> ``Retry`` that counts as a failed attempt (the longest countdown a ``worker.Retry`` asked
  for, else exponential backoff with jitter);
* nothing failed but some handlers could not run yet (claimed by another task for the same event, or held back
  by flow control: key busy, rate limit, concurrency cap) -> ``Defer``, which never counts as a failed attempt
  and never dead-letters: waiting is not failing.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from worker.backoff import backoff_delay
from worker.settings import Settings

REASON_PERMANENT = "permanent failure"
REASON_EXHAUSTED = "retries exhausted"
REASON_REDELIVERIES = "redelivery limit"
REASON_CLAIMED = "claimed by another task"


class FailureKind(Enum):
    PERMANENT = "permanent"  # worker.Permanent: retrying cannot help
    RETRY = "retry"  # worker.Retry: try again, maybe after the countdown it asked for
    ERROR = "error"  # any other exception: try again with backoff


@dataclass(frozen=True)
class Failure:
    handler: str
    kind: FailureKind
    error: str  # "Type: message", already redacted
    countdown: float | None = None  # only for RETRY: what the handler asked for


@dataclass(frozen=True)
class Held:
    """A handler that did not run this time and did not fail: it is to run later."""

    handler: str
    reason: str  # e.g. "claimed by another task", "key busy", "rate limited", "concurrency limit"
    countdown: float | None = None  # None: wait with backoff (how long is unknown)


@dataclass(frozen=True)
class Done:
    ran: int
    skipped: int


@dataclass(frozen=True)
class Retry:
    countdown: float
    reason: str
    counts_as_attempt: bool


@dataclass(frozen=True)
class DeadLetter:
    reason: str
    handlers: tuple[str, ...]
    error: str


@dataclass(frozen=True)
class Defer:
    countdown: float
    reason: str
    handlers: tuple[str, ...]


Outcome = Done | Retry | DeadLetter | Defer


def backoff(settings: Settings, attempt: int, rng: random.Random | None = None) -> float:
    return backoff_delay(
        attempt, base=settings.retry_backoff_seconds, cap=settings.retry_backoff_max_seconds, rng=rng
    )


def admit(redeliveries: int, pending: Sequence[str], settings: Settings) -> DeadLetter | None:
    """Before running anything: a message that keeps killing workers is parked rather than run again."""
    if redeliveries <= settings.max_redeliveries:
        return None
    error = f"task message redelivered {redeliveries} times after worker loss"
    return DeadLetter(REASON_REDELIVERIES, tuple(pending), error)


def counts_as_attempt(failures: Sequence[Failure]) -> bool:
    """Only failures spend the event's attempts; waiting (held handlers) never does."""
    return bool(failures)


def decide(
    *,
    ran: int,
    skipped: int,
    failures: Sequence[Failure],
    held: Sequence[Held],
    attempts: int,
    retries: int,
    settings: Settings,
    rng: random.Random | None = None,
) -> Outcome:
    """The outcome after the handlers ran.

    ``attempts``: failed attempts of this task including this one (the ledger's counter after ``finish``);
    ``retries``: how many times Celery has retried this task message so far (``request.retries``).
    """
    if not failures and not held:
        return Done(ran=ran, skipped=skipped)
    if failures:
        names = tuple(f.handler for f in failures)
        error = "; ".join(f"{f.handler}: {f.error}" for f in failures)
        if any(f.kind is FailureKind.PERMANENT for f in failures):
            return DeadLetter(REASON_PERMANENT, names, error)
        if attempts >= settings.task_max_attempts:
            return DeadLetter(REASON_EXHAUSTED, names, error)
        asked = [f.countdown for f in failures if f.kind is FailureKind.RETRY and f.countdown]
        countdown = max(asked) if asked else backoff(settings, attempts, rng)
        return Retry(countdown=countdown, reason=error, counts_as_attempt=True)
    # Only held handlers remain. Come back when the earliest of them may run; a claim held by another task
    # (unknown end) waits longer each time without spending this task's attempts.
    # Capped like any retry: the broker's visibility timeout is sized on that ceiling (a booked rate slot
    # further out is kept; the run just looks again at the cap).
    countdowns = [
        min(h.countdown, settings.retry_backoff_max_seconds)
        if h.countdown is not None
        else backoff(settings, retries + 1, rng)
        for h in held
    ]
    by_reason: dict[str, list[str]] = {}
    for h in held:
        by_reason.setdefault(h.reason, []).append(h.handler)
    reason = "; ".join(f"{why}: {', '.join(names)}" for why, names in by_reason.items())
    return Defer(countdown=min(countdowns), reason=reason, handlers=tuple(h.handler for h in held))
