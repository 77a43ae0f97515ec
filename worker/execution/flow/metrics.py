"""Deferral counters, fleet-wide: the acquire script counts each deferral in one Redis hash as it decides it.

The worker process serves no metrics itself (Celery's prefork children would each need their own registry);
counting in Redis costs no extra round trip and sums every worker. ``DeferralCollector`` turns the hash into
``ims_worker_flow_deferrals_total{handler, reason}`` for any process that serves ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Iterator

import redis
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from worker import keyspace


def deferral_counts(client: redis.Redis) -> dict[tuple[str, str], int]:
    """(handler, reason) -> count; reasons: key busy, concurrency limit, rate limited, stale, key missing."""
    counts: dict[tuple[str, str], int] = {}
    for field, value in client.hgetall(keyspace.FLOW_DEFERRALS).items():
        text = field.decode() if isinstance(field, bytes) else str(field)
        handler, _, reason = text.rpartition("|")
        counts[(handler, reason)] = int(value)
    return counts


class DeferralCollector(Collector):
    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "ims_worker_flow_deferrals",
            "Handler runs deferred (or skipped) by flow control, by handler and reason",
            labels=["handler", "reason"],
        )
        try:
            counts = deferral_counts(self._client)
        except redis.RedisError:
            counts = {}  # a scrape must not fail because Redis is away; the counts come back with it
        for (handler, reason), value in sorted(counts.items()):
            family.add_metric([handler, reason], value)
        yield family
