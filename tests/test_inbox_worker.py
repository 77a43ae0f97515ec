"""The inbox through a real Celery worker, real Redis and a real private PostgreSQL: a handler re-run with
its done marker gone finds its effect applied (the inbox is the truth), an async handler that raises after
its writes rolls them back with the claim, `replay` is a no-op for an applied effect unless `--reapply`, and
`ims-worker trace` shows what the inbox said each time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis

from tests.celery_worker import CeleryWorker, running_worker, wait_until
from tests.cli import cli
from tests.flowutil import upload_event
from tests.plugins.inbox import DSN_ENV, EFFECTS_TABLE
from worker import keyspace
from worker.delivery.publish import Publisher
from worker.events import Event
from worker.settings import Settings
from worker.testing import sample_event

pytestmark = pytest.mark.integration
UPLOAD = "tests.plugins.inbox:apply_upload"
PRODUCED = "tests.plugins.inbox:apply_produced"


def effects(dsn: str, event_id: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        found = conn.execute("SELECT handler FROM inbox_effects WHERE event_id = %s ORDER BY id", (event_id,))
        return [str(row[0]) for row in found.fetchall()]


def publish(redis_url: str, *events: Event) -> None:
    publisher = Publisher(Settings(broker_url=redis_url))
    try:
        assert all(r.enqueued for r in publisher.publish(list(events)))
    finally:
        publisher.close()


def trace(redis_url: str, event_id: str) -> str:
    done = cli("trace", event_id, env={"IMS_WORKER_BROKER_URL": redis_url})
    assert done.returncode == 0, done.stderr
    return done.stdout


def inbox_steps(redis_url: str, event_id: str) -> list[str]:
    """What the inbox said, oldest first: the DETAIL of each ``inbox`` step (its HANDLER is the test's)."""
    lines = [line for line in trace(redis_url, event_id).splitlines() if "  inbox  " in line]
    return [line.split("  inbox  ", 1)[1].strip().split(None, 1)[1] for line in lines]


@pytest.fixture
def stack(redis_url: str, ims_postgres: Any) -> Iterator[tuple[CeleryWorker, str]]:
    ims_postgres.psql(f"TRUNCATE ims_worker_inbox; DROP TABLE IF EXISTS inbox_effects; {EFFECTS_TABLE}")
    env = {
        "IMS_WORKER_BROKER_URL": redis_url,
        "IMS_WORKER_HANDLER_MODULES": "tests.plugins.inbox",
        "IMS_WORKER_RETRY_BACKOFF_SECONDS": "0.2",
        DSN_ENV: ims_postgres.dsn,
    }
    with running_worker(env, concurrency=2) as worker:
        yield worker, ims_postgres.dsn


def test_a_re_run_without_its_done_marker_finds_the_effect_applied(
    stack: tuple[CeleryWorker, str], redis_url: str
) -> None:
    worker, dsn = stack
    event = upload_event("FileUploadComplete", "media-1", 1)
    publish(redis_url, event)
    client = redis.Redis.from_url(redis_url)
    wait_until(lambda: client.exists(keyspace.done(event.id, UPLOAD)), timeout=30)
    assert effects(dsn, event.id) == ["apply_upload"]
    # The crash window, reproduced: the effect committed but the done marker was never written.
    client.delete(keyspace.done(event.id, UPLOAD), keyspace.dedupe(event.id))
    publish(redis_url, event)
    wait_until(lambda: client.exists(keyspace.done(event.id, UPLOAD)), timeout=30)
    client.close()
    assert effects(dsn, event.id) == ["apply_upload"]  # once: the inbox said it was applied
    steps = inbox_steps(redis_url, event.id)
    assert steps == ["applied", "already applied"], trace(redis_url, event.id)
    assert "task.inbox_already_applied" in worker.output()


def test_an_async_handler_that_raises_after_its_writes_rolls_them_back(
    stack: tuple[CeleryWorker, str], redis_url: str
) -> None:
    _, dsn = stack
    event = sample_event("ims.ProduceMediaComplete")
    client = redis.Redis.from_url(redis_url)
    client.set(f"async:raise:{event.id}", 1)
    publish(redis_url, event)
    wait_until(lambda: client.exists(keyspace.done(event.id, PRODUCED)), timeout=30)
    client.close()
    assert effects(dsn, event.id) == ["apply_produced"]
    history = trace(redis_url, event.id)
    assert "raised after the writes" in history and "retried" in history
    assert inbox_steps(redis_url, event.id) == ["applied"]


def test_replay_is_a_no_op_for_an_applied_effect_unless_reapply(
    stack: tuple[CeleryWorker, str], redis_url: str
) -> None:
    _, dsn = stack
    event = upload_event("FileUploadComplete", "media-2", 2)
    publish(redis_url, event)
    wait_until(lambda: effects(dsn, event.id), timeout=30)
    env = {"IMS_WORKER_BROKER_URL": redis_url, "IMS_WORKER_HANDLER_MODULES": "tests.plugins.inbox"}
    plain = cli("replay", "--event", event.id, "--handler", UPLOAD, "--yes", env=env)
    assert plain.returncode == 0, plain.stderr
    assert "do nothing for an event their inbox says they applied (--reapply forces" in plain.stdout
    wait_until(lambda: len(inbox_steps(redis_url, event.id)) == 2, timeout=30)
    assert effects(dsn, event.id) == ["apply_upload"]
    forced = cli("replay", "--event", event.id, "--handler", UPLOAD, "--reapply", "--yes", env=env)
    assert forced.returncode == 0, forced.stderr
    assert "--reapply: handlers that use worker.inbox.claim apply their effect again" in forced.stdout
    wait_until(lambda: len(inbox_steps(redis_url, event.id)) == 3, timeout=30)
    assert effects(dsn, event.id) == ["apply_upload", "apply_upload"]
    assert inbox_steps(redis_url, event.id) == ["applied", "already applied", "re-applied"]
