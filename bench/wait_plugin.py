"""Handlers of ``bench.profile_bench`` (``IMS_WORKER_HANDLER_MODULES=bench.wait_plugin``), one kind per worker
chosen by ``BENCH_HANDLER``:

* ``sync``: a blocking HTTP GET (``httpx.Client``, shared by the process's threads) to ``BENCH_HTTP_URL``,
  which answers after 50 ms (``bench.slowhttp``);
* ``async``: the same GET awaited (``httpx.AsyncClient``, made on the process's handler loop and kept);
* ``noop``: nothing but the probe: Celery's and the wrapper's own per-task cost;
* ``cpu``: ``BENCH_CPU_LOOPS`` iterations of pure-Python arithmetic (holds the GIL, ~10 ms).

Every kind ends with ``bench.probe.record`` (the event counted, first and last times).
"""

from __future__ import annotations

import os

import httpx

from bench.probe import record
from worker import Event, handler

KIND = os.environ.get("BENCH_HANDLER", "noop")
_sync: httpx.Client | None = None
_async: httpx.AsyncClient | None = None
LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=256)


def _client() -> httpx.Client:
    global _sync  # noqa: PLW0603 - one pooled client per process (made after the prefork fork)
    if _sync is None:
        _sync = httpx.Client(limits=LIMITS, timeout=10)
    return _sync


def _burn(loops: int) -> int:
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


if KIND == "async":

    @handler("ims.*", cpu_bound=False)
    async def wait_async(event: Event) -> None:
        global _async  # noqa: PLW0603 - bound to the process's one handler loop, which lives as long
        if _async is None:
            _async = httpx.AsyncClient(limits=LIMITS, timeout=10)
        (await _async.get(os.environ["BENCH_HTTP_URL"])).raise_for_status()
        record(event)

elif KIND == "sync":

    @handler("ims.*", cpu_bound=False)
    def wait_sync(event: Event) -> None:
        _client().get(os.environ["BENCH_HTTP_URL"]).raise_for_status()
        record(event)

elif KIND == "cpu":

    @handler("ims.*", cpu_bound=True)
    def compute(event: Event) -> None:
        _burn(int(os.environ.get("BENCH_CPU_LOOPS", "100000")))
        record(event)

else:

    @handler("ims.*")
    def noop(event: Event) -> None:
        record(event)
