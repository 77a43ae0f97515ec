"""Calling a handler that may be ``async def``: its awaitable runs to completion before the call returns.

A coroutine that is never awaited does nothing, yet the handler "returned" normally: the task wrapper would
record it as done. ``call_handler`` awaits whatever awaitable a handler returns on the worker process's one
event loop, which runs in its own thread ("async-handlers", started on first use, again after a fork). Every
pool thread submits its coroutine there and waits, so under the threads pool many async handlers await at
once on one loop, and clients bound to that loop (an aiohttp session cached by the plugin) stay valid across
tasks. Each handler's await is its own asyncio task: its failure, timeout or cancellation is its own.

Time limit: the await is cut (cancelled, ``HandlerTimeout``) just before the task's soft time limit, in every
pool. Celery enforces its own soft limit only in prefork (a signal to the child): there, an interrupted wait
cancels the coroutine too, so it never resumes during the next event's run. An async handler that blocks the
loop (a sync call inside ``async def``) cannot be cancelled; the waiting thread gives up one ``GRACE_SECONDS``
after the budget, the attempt fails, and the other handlers on the loop are delayed meanwhile.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import inspect
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

GRACE_SECONDS = 2.0  # past the budget, the waiting thread stops waiting for a loop that does not answer


class HandlerTimeout(TimeoutError):
    """An async handler did not finish within the task's soft time limit (the attempt fails and retries)."""


class _LoopThread:
    """One event loop per process, run forever by a daemon thread."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="async-handlers", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def alive(self) -> bool:
        return self.pid == os.getpid() and self.thread.is_alive() and not self.loop.is_closed()

    def stop(self) -> None:
        async def shutdown() -> None:
            await self.loop.shutdown_asyncgens()
            self.loop.stop()

        if self.alive():
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop)
            self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()


_current: _LoopThread | None = None
_lock = threading.Lock()


def event_loop() -> asyncio.AbstractEventLoop:
    """This process's loop (running in its own thread); a new one after a fork: a loop must not cross
    processes."""
    global _current  # noqa: PLW0603 - one loop thread per process
    with _lock:
        if _current is None or not _current.alive():
            _current = _LoopThread()
        return _current.loop


async def _bounded(awaitable: Awaitable[T], timeout: float | None) -> T:
    if timeout is None:
        return await awaitable
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except TimeoutError as exc:
        raise HandlerTimeout(f"async handler did not finish within {timeout:g}s") from exc


def run_awaitable(awaitable: Awaitable[T], *, timeout: float | None = None) -> T:
    """Run ``awaitable`` to completion on this process's loop (cancelled after ``timeout`` seconds)."""
    loop = event_loop()
    # The caller's context (structlog's task_id, event_id...) goes with the coroutine into the loop thread.
    context = contextvars.copy_context()
    result: concurrent.futures.Future[T] = concurrent.futures.Future()
    tasks: list[asyncio.Task[T]] = []

    def start() -> None:
        task = loop.create_task(_bounded(awaitable, timeout), context=context)
        tasks.append(task)
        task.add_done_callback(lambda t: _settle(t, result))

    loop.call_soon_threadsafe(start)
    wait = None if timeout is None else timeout + GRACE_SECONDS
    try:
        return result.result(wait)
    except TimeoutError as exc:  # HandlerTimeout is one too: only a result still pending means a blocked loop
        if result.done():
            raise
        loop.call_soon_threadsafe(_cancel, tasks)
        raise HandlerTimeout(f"async handler did not finish within {wait:g}s (the loop is blocked)") from exc
    except BaseException:
        # Interrupted from outside (prefork's SoftTimeLimitExceeded comes as a signal): cancel the task, and
        # wait a moment for it to unwind, so it does not resume, side effects and all, during a later run.
        if not result.done():
            loop.call_soon_threadsafe(_cancel, tasks)
            with contextlib.suppress(BaseException):
                result.result(GRACE_SECONDS)
        raise


def _settle(task: asyncio.Task[T], result: concurrent.futures.Future[T]) -> None:
    if task.cancelled():
        result.set_exception(asyncio.CancelledError())
    elif (exc := task.exception()) is not None:
        result.set_exception(exc)
    else:
        result.set_result(task.result())


def _cancel(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()


def await_budget(time_limit: float) -> float:
    """Slightly less than the task's soft limit: our cancellation (clean) comes before Celery's signal."""
    return time_limit - min(1.0, time_limit * 0.05)


def call_handler(func: Callable[[Any], object], event: Any, *, timeout: float | None = None) -> object:
    """``func(event)``, awaiting the result when it is awaitable; exceptions propagate unchanged.

    ``timeout`` is the task's soft time limit; an awaitable still pending just before it fails with
    ``HandlerTimeout`` (a failed attempt: retried, then dead-lettered like any other failure).
    """
    result = func(event)
    if inspect.isawaitable(result):
        return run_awaitable(result, timeout=None if timeout is None else await_budget(timeout))
    return result


def close_loop() -> None:
    """Stop this process's loop thread and close the loop (worker shutdown, tests)."""
    global _current
    with _lock:
        current, _current = _current, None
    if current is not None:
        current.stop()
