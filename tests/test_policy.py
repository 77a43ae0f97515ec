"""The task outcome policy, table by table, in-process (no Redis, no Celery)."""

from __future__ import annotations

import random

import pytest

from worker.execution.policy import (
    REASON_CLAIMED,
    REASON_EXHAUSTED,
    REASON_PERMANENT,
    REASON_REDELIVERIES,
    DeadLetter,
    Defer,
    Done,
    Failure,
    FailureKind,
    Held,
    Outcome,
    Retry,
    admit,
    counts_as_attempt,
    decide,
)
from worker.settings import Settings

SETTINGS = Settings(task_max_attempts=5, retry_backoff_seconds=2.0, retry_backoff_max_seconds=300.0)

PERM = Failure("h:a", FailureKind.PERMANENT, "worker.errors.Permanent: gone")
ASK_30 = Failure("h:b", FailureKind.RETRY, "worker.errors.Retry: later", countdown=30.0)
ASK_5 = Failure("h:c", FailureKind.RETRY, "worker.errors.Retry: soon", countdown=5.0)
ASK_NONE = Failure("h:d", FailureKind.RETRY, "worker.errors.Retry: whenever")
BOOM = Failure("h:e", FailureKind.ERROR, "ValueError: boom")
CLAIMED = Held("h:f", REASON_CLAIMED)
KEY_BUSY = Held("h:g", "key busy", countdown=1.0)
RATE = Held("h:h", "rate limited", countdown=0.35)


def run(
    failures: tuple[Failure, ...] = (),
    held: tuple[Held, ...] = (),
    attempts: int = 0,
    retries: int = 0,
    ran: int = 1,
) -> Outcome:
    return decide(
        ran=ran,
        skipped=2,
        failures=failures,
        held=held,
        attempts=attempts,
        retries=retries,
        settings=SETTINGS,
        rng=random.Random(7),
    )


@pytest.mark.parametrize(
    ("failures", "held", "attempts", "expected"),
    [
        # nothing failed, nothing waits
        ((), (), 0, Done(ran=1, skipped=2)),
        # Permanent wins over everything, on the first attempt, naming only the failed handlers
        ((PERM,), (), 1, DeadLetter(REASON_PERMANENT, ("h:a",), "h:a: worker.errors.Permanent: gone")),
        (
            (BOOM, PERM),
            (CLAIMED,),
            1,
            DeadLetter(
                REASON_PERMANENT, ("h:e", "h:a"), "h:e: ValueError: boom; h:a: worker.errors.Permanent: gone"
            ),
        ),
        # the last allowed attempt failed
        ((BOOM,), (), 5, DeadLetter(REASON_EXHAUSTED, ("h:e",), "h:e: ValueError: boom")),
        ((ASK_30,), (), 6, DeadLetter(REASON_EXHAUSTED, ("h:b",), "h:b: worker.errors.Retry: later")),
        # a Retry's countdown is honoured; of several, the longest
        ((ASK_30,), (), 1, Retry(30.0, "h:b: worker.errors.Retry: later", counts_as_attempt=True)),
        (
            (ASK_5, ASK_30),
            (),
            4,
            Retry(30.0, "h:c: worker.errors.Retry: soon; h:b: worker.errors.Retry: later", True),
        ),
        # failures and waiting handlers together: the failures decide (and spend an attempt)
        ((ASK_5,), (KEY_BUSY, RATE), 2, Retry(5.0, "h:c: worker.errors.Retry: soon", True)),
        # only flow control holds a handler back: come back when the earliest may run, no attempt spent
        ((), (KEY_BUSY,), 0, Defer(1.0, "key busy: h:g", ("h:g",))),
        ((), (KEY_BUSY, RATE), 4, Defer(0.35, "key busy: h:g; rate limited: h:h", ("h:g", "h:h"))),
    ],
)
def test_outcome_table(
    failures: tuple[Failure, ...], held: tuple[Held, ...], attempts: int, expected: Outcome
) -> None:
    assert run(failures, held, attempts) == expected


@pytest.mark.parametrize(
    ("failures", "attempts", "low", "high"),
    [
        ((BOOM,), 1, 1.0, 2.0),  # backoff of attempt n: uniform in [base/2, base * 2**(n-1)]
        ((BOOM,), 3, 1.0, 8.0),
        ((ASK_NONE,), 2, 1.0, 4.0),  # a Retry without a countdown backs off like any error
        ((BOOM, ASK_NONE), 4, 1.0, 16.0),
        ((BOOM,), 4, 1.0, 16.0),
    ],
)
def test_failures_back_off_exponentially_and_spend_an_attempt(
    failures: tuple[Failure, ...], attempts: int, low: float, high: float
) -> None:
    outcome = run(failures, attempts=attempts)
    assert isinstance(outcome, Retry) and outcome.counts_as_attempt
    assert low <= outcome.countdown <= high
    assert "ValueError: boom" in outcome.reason or "whenever" in outcome.reason


def test_backoff_is_capped_by_the_setting() -> None:
    settings = Settings(task_max_attempts=50, retry_backoff_seconds=2.0, retry_backoff_max_seconds=10.0)
    outcome = decide(ran=0, skipped=0, failures=(BOOM,), held=(), attempts=40, retries=40, settings=settings)
    assert isinstance(outcome, Retry) and 1.0 <= outcome.countdown <= 10.0


@pytest.mark.parametrize(("retries", "high"), [(0, 2.0), (2, 8.0), (20, 300.0)])
def test_a_claim_held_by_another_task_waits_longer_each_time_without_spending_attempts(
    retries: int, high: float
) -> None:
    outcomes = [run(held=(CLAIMED,), retries=retries, attempts=4) for _ in range(5)]
    for outcome in outcomes:
        assert isinstance(outcome, Defer)
        assert 1.0 <= outcome.countdown <= high
        assert outcome.reason == f"{REASON_CLAIMED}: h:f"
    # the flow-control deferral with a known countdown is not stretched by the claim's backoff
    mixed = run(held=(CLAIMED, RATE), retries=retries)
    assert isinstance(mixed, Defer) and mixed.countdown == 0.35


def test_waiting_never_dead_letters_however_long_it_lasts() -> None:
    for retries in (0, 10, 1000):
        outcome = run(held=(KEY_BUSY,), retries=retries, attempts=SETTINGS.task_max_attempts - 1)
        assert isinstance(outcome, Defer)


@pytest.mark.parametrize(
    ("failures", "expected"), [((), False), ((BOOM,), True), ((PERM,), True), ((ASK_5, ASK_30), True)]
)
def test_only_failures_count_as_attempts(failures: tuple[Failure, ...], expected: bool) -> None:
    assert counts_as_attempt(failures) is expected


@pytest.mark.parametrize(
    ("redeliveries", "expected"),
    [
        (0, None),
        (5, None),  # max_redeliveries=5: the fifth redelivery still runs
        (
            6,
            DeadLetter(
                REASON_REDELIVERIES, ("h:x", "h:y"), "task message redelivered 6 times after worker loss"
            ),
        ),
    ],
)
def test_redelivery_cap(redeliveries: int, expected: DeadLetter | None) -> None:
    assert admit(redeliveries, ["h:x", "h:y"], Settings(max_redeliveries=5)) == expected


def test_a_long_flow_wait_is_capped_like_any_retry() -> None:
    settings = Settings(retry_backoff_max_seconds=300.0)
    hourly = Held("h:r", "rate limited", countdown=3000.0)
    outcome = decide(ran=0, skipped=0, failures=(), held=(hourly,), attempts=0, retries=0, settings=settings)
    assert outcome == Defer(300.0, "rate limited: h:r", ("h:r",))
