"""``async def`` handlers in a real Celery worker: awaited, with retries, dead letters and done markers."""

from __future__ import annotations

import asyncio
from collections.abc import Generator, Iterator
from typing import Any

import pytest
import redis

from tests.celery_worker import running_worker, wait_until
from tests.conftest import SAMPLES_DIR
from worker import keyspace
from worker.delivery.deadletter import DeadLetterStore
from worker.delivery.publish import Publisher
from worker.events import Event
from worker.execution.asyncrun import HandlerTimeout, call_handler, close_loop, event_loop
from worker.providers import normalize
from worker.settings import Settings

ASYNC = "tests.plugins.asyncplugin:async_ims"

pytestmark = pytest.mark.integration


def ims(name: str) -> Event:
    (event,) = normalize("ims", (SAMPLES_DIR / "ims" / f"{name}.json").read_bytes())
    return event


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    yield r
    r.close()


def test_async_handlers_retry_dead_letter_time_out_and_reuse_one_loop(
    redis_url: str, client: redis.Redis
) -> None:
    names = ("ProduceMediaComplete", "SnapshotComplete", "TranscodeComplete", "FileUploadComplete")
    flaky, doomed, hung, plain = (ims(n) for n in names)
    client.set(f"async:fail:{flaky.id}", 1)
    client.set(f"async:permanent:{doomed.id}", 1)
    client.set(f"async:hang:{hung.id}", 1)
    env = {
        "IMS_WORKER_BROKER_URL": redis_url,
        "IMS_WORKER_HANDLER_MODULES": "tests.plugins.asyncplugin",
        "IMS_WORKER_TASK_MAX_ATTEMPTS": "2",
        "IMS_WORKER_RETRY_BACKOFF_SECONDS": "0.05",
        "IMS_WORKER_RETRY_BACKOFF_MAX_SECONDS": "0.2",
        "IMS_WORKER_TASK_SOFT_TIME_LIMIT": "1",
        "IMS_WORKER_TASK_TIME_LIMIT": "5",
    }
    store = DeadLetterStore(redis_url)
    with running_worker(env) as worker:
        publisher = Publisher(Settings(broker_url=redis_url))
        publisher.publish([flaky, doomed, hung, plain])
        publisher.close()
        wait_until(lambda: client.exists(keyspace.done(flaky.id, ASYNC)) and store.count() == 2, timeout=30)
        output = worker.output()
    store.close()
    # Retry asked once, then success: two awaited runs, recorded done once.
    assert client.get(f"async:runs:{flaky.id}") == "2"
    assert client.exists(keyspace.done(plain.id, ASYNC)) and client.get(f"async:runs:{plain.id}") == "1"
    letters = {e.event_id: e for e in DeadLetterStore(redis_url).list()}
    assert letters[doomed.id].reason == "permanent failure" and letters[doomed.id].attempts == 1
    assert "async handler says never" in (letters[doomed.id].error or "")
    # A hung await is cut at the soft time limit, each attempt, until the attempts are spent.
    assert letters[hung.id].reason == "retries exhausted" and letters[hung.id].attempts == 2
    assert "HandlerTimeout" in (letters[hung.id].error or "")
    assert not client.exists(keyspace.done(doomed.id, ASYNC)) and not client.exists(
        keyspace.done(hung.id, ASYNC)
    )
    # One loop per worker process, reused by every run (a child replaced after a hard time limit on a loaded
    # machine has its own).
    loops = set(client.lrange("async:loops", 0, -1))
    assert len(loops) == len({str(entry).split(":")[0] for entry in loops}), loops
    assert "was never awaited" not in output


def test_call_handler_awaits_any_awaitable_and_bounds_it() -> None:
    seen: list[str] = []

    async def ok(event: str) -> None:
        await asyncio.sleep(0)
        seen.append(event)

    class Custom:  # an awaitable that is not a coroutine
        def __await__(self) -> Generator[Any, None, None]:
            yield from asyncio.sleep(0).__await__()
            seen.append("custom")

    assert call_handler(ok, "e1") is None and seen == ["e1"]
    call_handler(lambda _: Custom(), "e2")
    assert seen == ["e1", "custom"]
    loop = event_loop()
    assert event_loop() is loop

    async def hang(event: str) -> None:
        await asyncio.Event().wait()

    with pytest.raises(HandlerTimeout, match=r"within 0\.0475s"):
        call_handler(hang, "e3", timeout=0.05)
    assert event_loop() is loop and not loop.is_closed()
    close_loop()


def test_threads_await_together_on_one_loop_with_their_own_context_and_failures() -> None:
    import contextvars  # noqa: PLC0415
    import threading  # noqa: PLC0415
    import time  # noqa: PLC0415
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    task_id: contextvars.ContextVar[str] = contextvars.ContextVar("task_id")
    seen: dict[str, str] = {}

    async def wait(event: str) -> str:
        await asyncio.sleep(0.5)
        if event == "e3":
            raise ValueError("e3 fails alone")
        seen[event] = task_id.get()  # the submitting thread's context came along
        return threading.current_thread().name

    def submit(event: str) -> object:
        task_id.set(f"task-{event}")
        return call_handler(wait, event, timeout=5)

    began = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        futures = {f"e{i}": pool.submit(submit, f"e{i}") for i in range(8)}
        outcomes = {name: f.exception() or f.result() for name, f in futures.items()}
    assert time.monotonic() - began < 3.0  # 8 x 0.5 s side by side, not one after another (4 s)
    assert isinstance(outcomes.pop("e3"), ValueError)
    assert set(outcomes.values()) == {"async-handlers"}
    assert seen == {f"e{i}": f"task-e{i}" for i in range(8) if i != 3}

    async def blocks(event: str) -> None:
        time.sleep(3.2)  # a sync call inside async def: the loop cannot cut it

    with pytest.raises(HandlerTimeout, match="the loop is blocked"):
        call_handler(blocks, "e9", timeout=1.0)
    close_loop()
