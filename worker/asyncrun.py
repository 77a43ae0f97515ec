"""Calling a handler that may be ``async def``: its awaitable runs to completion before the call returns.

A coroutine that is never awaited does nothing, yet the handler "returned" normally: the task wrapper would
record it as done. ``call_handler`` awaits whatever awaitable a handler returns, on one event loop per worker
process (and thread), made on first use and reused across tasks (clients bound to it, e.g. an aiohttp session
cached by the plugin, stay valid), bounded by the task's soft time limit so a hung await fails the attempt
(and is retried) instead of holding the worker until Celery's hard limit kills it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class HandlerTimeout(TimeoutError):
    """An async handler did not finish within the task's soft time limit (the attempt fails and retries)."""


class _Loops(threading.local):
    loop: asyncio.AbstractEventLoop | None = None
    pid: int = 0


_loops = _Loops()


def event_loop() -> asyncio.AbstractEventLoop:
    """This process's (and thread's) loop; a new one after a fork, since a loop must not cross processes."""
    loop = _loops.loop
    if loop is None or loop.is_closed() or _loops.pid != os.getpid():
        loop = asyncio.new_event_loop()
        _loops.loop, _loops.pid = loop, os.getpid()
    return loop


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
    task = loop.create_task(_bounded(awaitable, timeout))
    try:
        return loop.run_until_complete(task)
    except BaseException:
        # Interrupted from outside (Celery's SoftTimeLimitExceeded comes as a signal): the task must not stay
        # pending in the reused loop, or it would resume, side effects and all, during the next event's run.
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                loop.run_until_complete(task)
        raise


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
    """Close this thread's loop (worker shutdown, tests)."""
    loop, _loops.loop = _loops.loop, None
    if loop is not None and not loop.is_closed():
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
