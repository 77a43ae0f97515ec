"""The handler plugin the benchmarks load through ``IMS_WORKER_HANDLER_MODULES=bench.plugin``: ``record``
(``bench.probe``) subscribed to every IMS event."""

from __future__ import annotations

from bench.probe import COUNTER_KEY, FIRST_KEY, LAST_KEY, LATENCY_KEY, record
from worker import Event, handler

__all__ = ["COUNTER_KEY", "FIRST_KEY", "LAST_KEY", "LATENCY_KEY", "bench_probe", "record"]


@handler("ims.*")
def bench_probe(event: Event) -> None:
    record(event)
