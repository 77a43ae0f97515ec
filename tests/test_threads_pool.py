"""The ``io`` profile (Celery's threads pool) in a real worker: waits overlap, sync and async, in one process;
a hung await is cut at the soft time limit and each handler's failure stays its own; a sync handler past the
limit is reported; gevent and eventlet are refused at start."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.celery_worker import running_worker, wait_until
from tests.cli import cli
from tests.flowutil import upload_event
from tests.plugins.overlap import RUNS
from tests.servers import RedisServer
from worker import keyspace
from worker.delivery.deadletter import DeadLetterStore
from worker.delivery.publish import Publisher
from worker.events import Event
from worker.execution.celeryconfig import celery_config
from worker.execution.profile import IO_THREADS, pool_name, refusal
from worker.settings import Settings

pytestmark = pytest.mark.integration

PLUGIN = "tests.plugins.overlap"
SYNC, ASYNC = f"{PLUGIN}:wait_sync", f"{PLUGIN}:wait_async"


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    yield r
    r.close()


def publish(redis_url: str, events: list[Event]) -> None:
    publisher = Publisher(Settings(broker_url=redis_url))
    try:
        assert all(r.enqueued for r in publisher.publish(events))
    finally:
        publisher.close()


def recorded(client: redis.Redis) -> list[dict[str, Any]]:
    rows = [str(line).split("|") for line in client.lrange(RUNS, 0, -1)]
    keys = ("kind", "event_id", "start", "end", "pid", "thread")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def most_at_once(runs: list[dict[str, Any]]) -> int:
    edges = sorted([(float(r["start"]), 1) for r in runs] + [(float(r["end"]), -1) for r in runs])
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


def env_for(redis_url: str, **extra: str) -> dict[str, str]:
    return {"IMS_WORKER_BROKER_URL": redis_url, "IMS_WORKER_HANDLER_MODULES": PLUGIN, **extra}


def test_the_io_profile_runs_sync_and_async_waits_side_by_side_in_one_process(
    redis_url: str, client: redis.Redis
) -> None:
    client.set("overlap:seconds", 1.0)
    sync = [upload_event("FileUploadComplete", f"m-{i}", i) for i in range(24)]
    waits = [upload_event("UploadByURLComplete", f"m-{i}", i) for i in range(24)]
    env = env_for(redis_url, IMS_WORKER_WORKER_PROFILE="io")
    with running_worker(env, pool=None) as worker:  # no -P / -c: the profile chooses
        publish(redis_url, sync + waits)
        wait_until(lambda: client.llen(RUNS) >= 48, timeout=60, interval=0.2)
        output = worker.output()
    runs = recorded(client)
    assert sorted(r["event_id"] for r in runs) == sorted(e.id for e in sync + waits)  # each once
    assert len({r["pid"] for r in runs}) == 1
    assert '"pool": "threads"' in output or "pool=threads" in output, output[-2000:]
    # 32 threads, 1 s waits: far more than one at a time, for each kind (prefork -c 2 would show 2).
    assert most_at_once([r for r in runs if r["kind"] == "sync"]) >= 8
    assert most_at_once([r for r in runs if r["kind"] == "async"]) >= 8
    # Async handlers await on the process's one loop thread, not in the pool threads.
    assert {r["thread"] for r in runs if r["kind"] == "async"} == {"async-handlers"}
    assert all(client.exists(keyspace.done(e.id, SYNC)) for e in sync)
    assert all(client.exists(keyspace.done(e.id, ASYNC)) for e in waits)


def test_threads_pool_cuts_a_hung_await_and_keeps_each_failure_its_own(
    redis_url: str, client: redis.Redis
) -> None:
    hung, failing, *fine = (upload_event("UploadByURLComplete", f"a-{i}", i) for i in range(6))
    slow = upload_event("FileUploadComplete", "s-1", 100)
    client.set("overlap:seconds", 0.2)
    client.set(f"overlap:hang:{hung.id}", 3600)
    client.set(f"overlap:fail:{failing.id}", 1)
    client.set(f"overlap:hang:{slow.id}", 3)  # a sync handler cannot be cut: it runs past the soft limit
    env = env_for(
        redis_url,
        IMS_WORKER_TASK_SOFT_TIME_LIMIT="1",
        IMS_WORKER_TASK_TIME_LIMIT="2",
        IMS_WORKER_TASK_MAX_ATTEMPTS="1",
    )
    store = DeadLetterStore(redis_url)
    with running_worker(env, pool="threads", concurrency=8) as worker:
        publish(redis_url, [hung, failing, *fine, slow])
        wait_until(lambda: store.count() == 2 and client.exists(keyspace.done(slow.id, SYNC)), timeout=60)
        wait_until(lambda: "task.handler_overran" in worker.output(), timeout=10)
        output = worker.output()
    letters = {e.event_id: e for e in store.list()}
    store.close()
    assert letters[hung.id].reason == "retries exhausted" and "HandlerTimeout" in (
        letters[hung.id].error or ""
    )
    assert letters[failing.id].reason == "permanent failure"
    assert all(client.exists(keyspace.done(e.id, ASYNC)) for e in fine)
    # The sync one was not stopped (a thread cannot be): it finished, is recorded done, and was reported.
    assert "task.handler_overrunning" in output and "task.handler_stuck" in output
    assert "NotImplementedError" not in output and "was never awaited" not in output


def test_a_broker_outage_while_threads_run_handlers_loses_nothing_and_runs_nothing_twice(
    redis_server: RedisServer, redis_url: str, client: redis.Redis
) -> None:
    # Celery's default would "terminate" the running task on the lost connection, which the threads pool
    # cannot do (NotImplementedError in the consumer): the worker lets it run on instead.
    slow = upload_event("FileUploadComplete", "outage-1", 1)
    client.set(f"overlap:hang:{slow.id}", 4)
    env = env_for(redis_url, IMS_WORKER_BROKER_VISIBILITY_TIMEOUT="8")
    with running_worker(env, pool="threads", concurrency=4) as worker:
        publish(redis_url, [slow])
        wait_until(lambda: "Task ims.FileUploadComplete[" in worker.output(), timeout=20)
        redis_server.stop()
        time.sleep(1.0)
        redis_server.start()
        # The run finishes and its success is recorded. Its message is acked, or, if the ack was lost with the
        # connection, comes back after the 8 s lease and the ledger skips the handler: either way it is gone
        # within a lease and a restore interval, and the handler ran once.
        wait_until(lambda: client.exists(keyspace.done(slow.id, SYNC)), timeout=30)
        wait_until(lambda: not client.hlen("unacked") and not client.llen("ims"), timeout=40)
        time.sleep(3.0)  # a second run, if any, would be recorded by now
        assert worker.alive()
        output = worker.output()
    assert [r["event_id"] for r in recorded(client)] == [slow.id]  # ran once
    assert "NotImplementedError" not in output


def test_the_profile_chooses_pool_and_concurrency() -> None:
    io, cpu = Settings(worker_profile="io"), Settings(worker_profile="cpu")
    assert (celery_config(io)["worker_pool"], celery_config(io)["worker_concurrency"]) == (
        "threads",
        IO_THREADS,
    )
    assert (celery_config(cpu)["worker_pool"], celery_config(cpu)["worker_concurrency"]) == ("prefork", 0)
    assert celery_config(Settings(worker_profile="io", worker_concurrency=8))["worker_concurrency"] == 8
    assert Settings().worker_profile == "cpu"  # today's prefork, unless chosen


def test_gevent_and_eventlet_are_refused_with_one_line() -> None:
    from celery.concurrency.prefork import TaskPool as Prefork  # noqa: PLC0415
    from celery.concurrency.thread import TaskPool as Threads  # noqa: PLC0415

    assert (pool_name(Threads), pool_name(Prefork), pool_name("solo")) == ("threads", "prefork", "solo")
    for name in ("gevent", "eventlet", "celery.concurrency.gevent:TaskPool"):
        reason = refusal(name)
        assert reason is not None and "\n" not in reason and "IMS_WORKER_WORKER_PROFILE=io" in reason
    gevent_pool = type("TaskPool", (), {"__module__": "celery.concurrency.gevent"})
    assert refusal(gevent_pool) is not None
    assert refusal(Threads) is None and refusal(Prefork) is None and refusal("solo") is None


def test_a_refused_pool_stops_the_worker_at_start(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    # gevent is not installed here (Celery's -P gevent would fail on the import before us): the worker_init
    # receiver gets a pool class named like Celery's gevent pool, as the worker hands it over.
    from types import SimpleNamespace  # noqa: PLC0415

    from worker.app import _on_worker_init, create_app  # noqa: PLC0415

    gevent_pool = type("TaskPool", (), {"__module__": "celery.concurrency.gevent"})
    app = create_app(Settings(broker_url=redis_url))
    with pytest.raises(SystemExit) as stopped:
        _on_worker_init(sender=SimpleNamespace(app=app, pool_cls=gevent_pool))
    assert stopped.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ims-worker: the gevent pool is not supported")


def test_handlers_list_and_check_warn_when_the_profile_does_not_fit(redis_url: str) -> None:
    env = {"IMS_WORKER_HANDLER_MODULES": PLUGIN, "IMS_WORKER_BROKER_URL": redis_url}
    cpu = cli("handlers", "list", env={**env, "IMS_WORKER_WORKER_PROFILE": "cpu"})
    assert cpu.returncode == 0, cpu.stderr
    assert f"warning: {ASYNC} waits" in cpu.stderr and f"warning: {SYNC} waits" in cpu.stderr
    assert "compute is declared cpu_bound" not in cpu.stderr
    io = cli("check", env={**env, "IMS_WORKER_WORKER_PROFILE": "io"})
    assert f"warn  profile io: {PLUGIN}:compute is declared cpu_bound" in io.stdout, io.stdout
    assert "wait_async waits" not in io.stdout
    assert "cpu_bound=True" in cli("handlers", "list", env=env).stdout
