"""Worker profiles (``IMS_WORKER_WORKER_PROFILE``) and the Celery pools this worker runs under.

* ``io``: Celery's ``threads`` pool, 32 threads in one process. For handlers that wait (HTTP calls, database
  writes): a thread waiting on a socket releases the GIL, so 32 waits overlap; ``async def`` handlers of all
  threads await together on the process's one loop (``worker.execution.asyncrun``). Handler code must be
  thread-safe (module-level clients shared by threads: redis-py, httpx, requests.Session are).
* ``cpu``: ``prefork``, one process per CPU. For handlers that compute: each process has its own GIL.

Either is chosen only when the worker is started without pool flags (``-P``/``-c`` win; beware that Celery
takes ``-P prefork`` as "no flag" once the app configures a pool, so with the ``io`` profile set the profile
to ``cpu`` rather than passing ``-P prefork``).

Refused at start: ``gevent`` and ``eventlet``. They monkey-patch ``threading`` into greenlets, so the lease
heartbeat, the flow-control lease renewals and the async loop thread would run only when a handler yields;
a handler that computes or blocks in C (a driver without gevent support) would stop the heartbeat and let
other workers restore and run its deliveries a second time. ``threads`` gives the same overlap for waiting
handlers without that risk. ``solo`` (one task at a time in the main process) is accepted.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from worker.settings import Settings

IO_THREADS = 32  # enough waits in flight to reach Celery's own ceiling with 50 ms handlers (BENCHMARKS.md)
REFUSED = ("gevent", "eventlet")


@dataclass(frozen=True)
class Profile:
    pool: str
    concurrency: int  # 0: Celery's default, the CPU count


PROFILES = {"io": Profile("threads", IO_THREADS), "cpu": Profile("prefork", 0)}


def pool_config(settings: Settings) -> dict[str, Any]:
    """Celery's ``worker_pool`` and ``worker_concurrency`` for the settings' profile."""
    profile = PROFILES[settings.worker_profile]
    return {
        "worker_pool": profile.pool,
        "worker_concurrency": settings.worker_concurrency or profile.concurrency,
    }


def pool_name(pool_cls: Any) -> str:
    """``threads``, ``prefork``, ``solo``, ``gevent``, ``eventlet`` (or the class path) of a worker's pool,
    without importing it (the gevent pool module imports gevent)."""
    if isinstance(pool_cls, str):
        name = pool_cls
    else:
        name = f"{getattr(pool_cls, '__module__', '')}:{getattr(pool_cls, '__qualname__', '')}"
    module = name.split(":")[0].rsplit(".", 1)[-1]
    aliases = {"thread": "threads", "threads": "threads", "prefork": "prefork", "processes": "prefork"}
    return aliases.get(module, module if module in (*REFUSED, "solo") else name)


def refusal(pool_cls: Any) -> str | None:
    """The one-line reason a pool is refused, or None."""
    name = pool_name(pool_cls)
    if name in REFUSED:
        return (
            f"ims-worker: the {name} pool is not supported (the lease heartbeat would stall behind busy "
            "greenlets and deliveries could run twice); use IMS_WORKER_WORKER_PROFILE=io (threads)"
        )
    return None


def waits(func: Any, cpu_bound: bool | None) -> bool | None:
    """True for a handler that waits (declared ``cpu_bound=False``, or ``async def``), False for one declared
    CPU-bound, None when undeclared."""
    if cpu_bound is not None:
        return not cpu_bound
    return True if inspect.iscoroutinefunction(func) else None


def mismatch(name: str, handler_waits: bool | None, profile: str) -> str | None:
    """A warning when a handler's declaration does not fit the worker profile, else None."""
    if handler_waits is False and profile == "io":
        return (
            f"{name} is declared cpu_bound but the worker profile is io (threads share one GIL: it slows "
            "every handler of the process); run it on workers with IMS_WORKER_WORKER_PROFILE=cpu"
        )
    if handler_waits and profile == "cpu":
        return (
            f"{name} waits (async or cpu_bound=False) but the worker profile is cpu (prefork: one wait per "
            "process at a time); IMS_WORKER_WORKER_PROFILE=io overlaps its waits"
        )
    return None
