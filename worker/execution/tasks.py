"""The one task body behind every event type: the single place that catches and classifies exceptions.

For one task message: bind the logging context, rebuild the typed ``Event``, consult the handler ledger
(skip handlers already done for this id, claim the others), run the claimed handlers in stable order, record
each success, then carry out what ``worker.execution.policy`` decides from those facts: success, dead letter
(then
success), a retry that spends an attempt, or a deferral that does not. Redis unreachable or handlers not
loadable -> retry with backoff, without spending an attempt.

Nothing escapes as an ordinary failure: Celery would acknowledge it and the event would be lost.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Sequence
from typing import Any

import structlog
from celery import Task
from celery.exceptions import Reject
from celery.exceptions import Retry as CeleryRetry
from pydantic import ValidationError

from worker.delivery.deadletter import DeadLetterStoreFull
from worker.delivery.taskmessage import task_argsrepr
from worker.errors import ConfigurationError, Permanent
from worker.errors import Retry as HandlerRetry
from worker.events import Event
from worker.execution import policy
from worker.execution.asyncrun import call_handler
from worker.execution.flow.gate import Permit
from worker.execution.inboxrun import journal_claims, reapply_requested
from worker.execution.ledger import HandlerState
from worker.execution.overrun import watching
from worker.execution.registry import REGISTRY, Subscription, discover
from worker.execution.taskruntime import Runtime, current_runtime, runtime
from worker.inbox.context import running as inbox_running
from worker.journal.stats import attempt_stats, retried_stats
from worker.redact import redact_text
from worker.redisconn import REDIS_ERRORS
from worker.settings import Settings

log = structlog.get_logger(__name__)

REASON_PERMANENT = policy.REASON_PERMANENT
REASON_EXHAUSTED = policy.REASON_EXHAUSTED
REASON_REDELIVERIES = policy.REASON_REDELIVERIES
REASON_BAD_MESSAGE = "invalid task message"
# A dead letter the store has no room for: the event waits as a retry, tried again this much later.
FULL_STORE_RETRY_SECONDS = 300.0
_NOT_KEPT: tuple[type[Exception], ...] = (*REDIS_ERRORS, DeadLetterStoreFull)


class HandlerFailed(Exception):
    """Raised (inside Celery's Retry) to say which handlers failed, without the original exception objects."""


class Deferred(Exception):
    """Raised (inside Celery's Retry) when handlers wait their turn: Flower shows it with the reason."""


def summarize(exc: BaseException) -> str:
    """``Type: message`` with credentials in URLs removed and the length bounded."""
    kind = type(exc).__qualname__
    if type(exc).__module__ not in ("builtins", "__main__"):
        kind = f"{type(exc).__module__}.{kind}"
    text = redact_text(str(exc))
    return f"{kind}: {text[:1000]}" if text else kind


backoff = policy.backoff


def _retry(
    task: Task, countdown: float, reason: str, event: Event | None = None, *, deferred: bool = False
) -> CeleryRetry:
    """Schedule the next attempt. If even that cannot be sent, requeue the message itself (never ack it)."""
    if deferred:
        log.info("task.deferred", countdown=round(countdown, 3), reason=reason)
    else:
        log.warning("task.retrying", countdown=round(countdown, 3), reason=reason)
    options = {"argsrepr": task_argsrepr(event)} if event is not None else {}
    rt = current_runtime()
    if event is not None and rt is not None:  # the failure path: one more write is affordable here
        with contextlib.suppress(*REDIS_ERRORS):  # Redis may be what failed: the retry matters more
            kind, stats = ("deferred", None) if deferred else ("retried", retried_stats(event))
            rt.journal.note(event.id, kind, stats=stats, countdown=round(countdown, 3), why=reason[:200])
    exc = Deferred(reason) if deferred else HandlerFailed(reason)
    try:
        return task.retry(countdown=countdown, exc=exc, throw=False, **options)
    except Exception as exc:
        log.exception("task.retry_failed", error=summarize(exc))
        raise Reject(summarize(exc), requeue=True) from exc


def run_event(task: Task, args: Sequence[Any], settings: Settings) -> str:
    request = task.request
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(
        task_id=request.id, event_type=task.name, attempt=request.retries + 1
    )
    if len(args) != 1 or not isinstance(args[0], dict | str):
        return _bad_message(task, settings, _dump(args), "expected one argument: the event, or its id")
    arg, stored = args[0], None
    try:
        if isinstance(arg, str):  # enqueued by reference: the event is in the message's outbox record
            stored = runtime(settings).outbox.event_json(request.id)
            if stored is None:
                return _already_finished(arg)
            event = Event.model_validate_json(stored)
        else:
            event = Event.model_validate(arg)
    except REDIS_ERRORS as exc:
        raise _retry(task, backoff(settings, request.retries + 1), summarize(exc)) from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
        raw = _dump(args) if stored is None else stored.decode("utf-8", "replace")
        return _bad_message(task, settings, raw, f"event does not validate ({exc.error_count()}): {problems}")
    structlog.contextvars.bind_contextvars(event_id=event.id, source=event.source)
    try:
        return _handle(task, settings, event)
    except REDIS_ERRORS as exc:
        countdown = backoff(settings, request.retries + 1)
        raise _retry(task, countdown, f"Redis unavailable: {summarize(exc)}", event) from exc
    except ConfigurationError as exc:  # handlers failed to load: keep the event until they do
        raise _retry(task, backoff(settings, request.retries + 1), summarize(exc), event) from exc


def _already_finished(event_id: str) -> str:
    # The record is dropped with the event's final outcome, so this delivery is a duplicate of a task that
    # already finished (kombu restored it after its worker died between the outcome and the ack).
    structlog.contextvars.bind_contextvars(event_id=event_id)
    log.warning("task.already_finished", reason="no outbox record: the event reached its outcome before")
    return "skipped: already finished"


def _handle(task: Task, settings: Settings, event: Event) -> str:
    request, rt = task.request, runtime(settings)
    if not REGISTRY.subscriptions:
        # Started some way that skipped the worker_init discovery: never run an event with no handlers at all.
        discover(settings.handler_modules)
    subscriptions = REGISTRY.handlers_for(event.type)
    names = [s.name for s in subscriptions]
    redelivered = bool((request.delivery_info or {}).get("redelivered"))
    first = request.retries == 0  # the journal indexes the event and keeps its payload once
    start = rt.ledger.begin(
        event.id,
        request.id,
        names,
        redelivered=redelivered,
        attempt=request.retries + 1,
        event=event if first else None,
    )
    pending = [n for n, s in zip(names, start.states, strict=True) if s is not HandlerState.DONE]
    parked = policy.admit(start.redeliveries, pending, settings)
    if parked is not None:
        rt.ledger.finish(event.id, request.id, pending, failed=False)
        return _execute(task, rt, event, parked, attempts=request.retries)

    failures: list[policy.Failure] = []
    held: list[policy.Held] = []
    ran = skipped = 0
    for sub, state in zip(subscriptions, start.states, strict=True):
        if state is HandlerState.DONE:
            skipped += 1
        elif state is HandlerState.BUSY:
            held.append(policy.Held(sub.name, policy.REASON_CLAIMED))
        else:
            result = _run_one(rt, sub, event, request.id, settings)
            if isinstance(result, policy.Held):
                held.append(result)
            elif isinstance(result, policy.Failure):
                failures.append(result)
            elif result == RAN:
                ran += 1
            else:
                skipped += 1

    handled = not failures and not held
    release = [f.handler for f in failures] + [h.handler for h in held]
    failed = policy.counts_as_attempt(failures)
    errors = [(f.handler, f.error) for f in failures]
    stats = attempt_stats(event, handled=handled, failed=bool(failures))
    attempts = rt.ledger.finish(
        event.id, request.id, release, failed=failed, handled=handled, errors=errors, stats=stats
    )
    outcome = policy.decide(
        ran=ran,
        skipped=skipped,
        failures=failures,
        held=held,
        attempts=attempts,
        retries=request.retries,
        settings=settings,
    )
    return _execute(task, rt, event, outcome, attempts=attempts)


RAN, SKIPPED_STALE = "ran", "skipped (stale)"


def _run_one(
    rt: Runtime, sub: Subscription, event: Event, task_id: str, settings: Settings
) -> policy.Failure | policy.Held | str:
    """Run one claimed handler through flow control (key, rate, concurrency; FREE without options):
    ``RAN``, ``SKIPPED_STALE``, or why it did not run (held back, or failed)."""
    permit = rt.flow.enter(sub.name, sub.flow, event, task_id)
    if not isinstance(permit, Permit):
        return permit
    if permit.stale:
        log.info("flow.stale_skipped", handler=sub.name, occurred_at=str(event.occurred_at))
        rt.journal.note(event.id, "skipped-stale", handler=sub.name)
        rt.ledger.mark_done(event.id, task_id, sub.name)
        return SKIPPED_STALE
    began = time.perf_counter()
    reapply = functools.partial(reapply_requested, rt.client, task_id, sub.name)  # asked only on a repeat
    try:
        with (
            permit,
            watching(sub.name, settings.task_soft_time_limit, settings.task_time_limit),
            inbox_running(sub.name, event.id, task_id, reapply=reapply) as run,
        ):
            call_handler(sub.func, event, timeout=settings.task_soft_time_limit)
    except Exception as exc:  # the classifying boundary: every handler error is looked at below
        log.warning("task.handler_failed", handler=sub.name, error=summarize(exc), exc_info=exc)
        return _failure(sub.name, exc)
    ms = (time.perf_counter() - began) * 1000
    if run.claims:  # the handler used worker.inbox: its database's answer is the truth (trace shows it)
        journal_claims(rt.journal, event.id, sub.name, run.claims)
    rt.ledger.mark_done(event.id, task_id, sub.name, ms=ms)
    log.debug("task.handler_succeeded", handler=sub.name, ms=round(ms, 2))
    return RAN


def _failure(name: str, exc: Exception) -> policy.Failure:
    if isinstance(exc, Permanent):
        return policy.Failure(name, policy.FailureKind.PERMANENT, summarize(exc))
    if isinstance(exc, HandlerRetry):
        return policy.Failure(name, policy.FailureKind.RETRY, summarize(exc), exc.countdown)
    return policy.Failure(name, policy.FailureKind.ERROR, summarize(exc))


def _execute(task: Task, rt: Runtime, event: Event, outcome: policy.Outcome, *, attempts: int) -> str:
    """Carry out the policy's decision: return (the task succeeds) or raise Celery's Retry."""
    match outcome:
        case policy.Done(ran=ran, skipped=skipped):
            log.info("task.handled", handlers_run=ran, handlers_skipped=skipped)
            return f"handled={ran} skipped={skipped}"
        case policy.DeadLetter(reason=reason, handlers=handlers, error=error):
            try:
                return _dead_letter(
                    rt, event, reason, list(handlers), error=error, attempts=attempts, task_id=task.request.id
                )
            except DeadLetterStoreFull as exc:  # the event waits on the queue until there is room again
                raise _retry(task, FULL_STORE_RETRY_SECONDS, summarize(exc), event) from exc
        case policy.Retry(countdown=countdown, reason=reason):
            raise _retry(task, countdown, reason, event)
        case policy.Defer(countdown=countdown, reason=reason):
            raise _retry(task, countdown, reason, event, deferred=True)


def _dead_letter(
    rt: Runtime, event: Event, reason: str, handlers: list[str], *, error: str, attempts: int, task_id: str
) -> str:
    # Once per task id: a worker lost between this write and the ack redelivers the task, which must not
    # park the event twice. A redrive publishes a new task id, so a second failure after it is recorded.
    entry = rt.deadletters.add(
        once_key=f"task:{task_id}",
        raw=event.raw,
        source=event.source,
        reason=reason,
        error=error,
        attempts=attempts,
        event=event,
        handlers=handlers,
    )
    rt.outbox.finish(task_id)  # parked: the sweeper must not bring it back
    log.error(
        "task.dead_lettered", reason=reason, handlers=handlers, attempts=attempts, entry=entry, error=error
    )
    return f"dead-lettered ({reason}) as {entry}"


def _dump(args: Sequence[Any]) -> str:
    import json  # noqa: PLC0415 - only on this rare path

    return json.dumps(list(args), default=str)


def _bad_message(task: Task, settings: Settings, raw: str, error: str) -> str:
    rt = runtime(settings)
    try:
        entry = rt.deadletters.add(
            raw=raw, source="unknown", reason=REASON_BAD_MESSAGE, event_type=task.name, error=error
        )
    except _NOT_KEPT as exc:
        raise _retry(task, backoff(settings, task.request.retries + 1), summarize(exc)) from exc
    rt.outbox.finish(task.request.id)
    log.error("task.bad_message_dead_lettered", reason=REASON_BAD_MESSAGE, error=error, entry=entry)
    return f"dead-lettered ({REASON_BAD_MESSAGE}) as {entry}"
