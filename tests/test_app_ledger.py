"""The handler ledger (done markers, claims, counters) against a real Redis, and the wrapper's helpers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from worker import keyspace
from worker.execution.ledger import HandlerLedger, HandlerState
from worker.execution.tasks import backoff, summarize
from worker.settings import Settings

RUN, DONE, BUSY = HandlerState.RUN, HandlerState.DONE, HandlerState.BUSY


@pytest.fixture
def ledger(redis_url: str) -> Iterator[HandlerLedger]:
    client = redis.Redis.from_url(redis_url)
    yield HandlerLedger(client, claim_seconds=30, done_ttl_seconds=3600, outbox_deadline_seconds=3600)
    client.close()


@pytest.mark.integration
def test_done_handlers_are_skipped_and_others_claimed(ledger: HandlerLedger, redis_url: str) -> None:
    start = ledger.begin("ev1", "task-a", ["h1", "h2"], redelivered=False)
    assert start.states == (RUN, RUN) and start.redeliveries == 0
    ledger.mark_done("ev1", "task-a", "h1")
    client = redis.Redis.from_url(redis_url)
    assert client.exists(keyspace.done("ev1", "h1")) and not client.exists(keyspace.claim("ev1", "h1"))
    assert 3500 < client.ttl(keyspace.done("ev1", "h1")) <= 3600
    assert 0 < client.ttl(keyspace.claim("ev1", "h2")) <= 30
    client.close()
    assert ledger.begin("ev1", "task-a", ["h1", "h2"], redelivered=True).states == (DONE, RUN)


@pytest.mark.integration
def test_a_claim_of_another_task_means_busy_until_released(ledger: HandlerLedger) -> None:
    ledger.begin("ev1", "task-a", ["h1"], redelivered=False)
    assert ledger.begin("ev1", "task-b", ["h1"], redelivered=False).states == (BUSY,)
    # The same task id (a redelivery after a worker loss) takes its own claim over.
    assert ledger.begin("ev1", "task-a", ["h1"], redelivered=True).states == (RUN,)
    ledger.finish("ev1", "task-b", ["h1"], failed=False)  # not b's claim: left alone
    assert ledger.begin("ev1", "task-b", ["h1"], redelivered=False).states == (BUSY,)
    ledger.finish("ev1", "task-a", ["h1"], failed=True)
    assert ledger.begin("ev1", "task-b", ["h1"], redelivered=False).states == (RUN,)


@pytest.mark.integration
def test_counters(ledger: HandlerLedger) -> None:
    assert [ledger.begin("ev", "t", ["h"], redelivered=True).redeliveries for _ in range(3)] == [1, 2, 3]
    assert ledger.begin("ev", "t", ["h"], redelivered=False).redeliveries == 0
    assert [ledger.finish("ev", "t", ["h"], failed=True) for _ in range(2)] == [1, 2]
    assert ledger.finish("ev", "t", ["h"], failed=False) == 2
    assert ledger.finish("ev", "other-task", ["h"], failed=False) == 0


def test_summarize_names_the_type_and_hides_credentials() -> None:
    assert summarize(ValueError("bad value")) == "ValueError: bad value"
    assert summarize(KeyError()) == "KeyError"
    text = summarize(ConnectionError("cannot reach amqp://user:pa55@rabbit:5672//"))
    assert text == "ConnectionError: cannot reach amqp://[REDACTED]@rabbit:5672//"
    assert len(summarize(RuntimeError("x" * 5000))) < 1100


def test_backoff_grows_with_jitter_up_to_the_cap() -> None:
    settings = Settings(retry_backoff_seconds=2, retry_backoff_max_seconds=30)
    for attempt, ceiling in [(1, 2), (2, 4), (3, 8), (4, 16), (5, 30), (12, 30)]:
        delays = [backoff(settings, attempt) for _ in range(50)]
        assert all(1 <= d <= ceiling for d in delays), attempt
        assert len(set(delays)) > 1
