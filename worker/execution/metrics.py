"""The worker's /metrics: queue backlog, dead letters, in-flight, and the fleet-wide counters of the ledger.

Served by each worker's main process (``IMS_WORKER_WORKER_METRICS_PORT``, default 9102) and read from Redis
at scrape time. Handler outcomes are counted by the ledger's scripts in ``ims-worker:stats`` (see
``worker.journal.stats``): the numbers are the whole fleet's, so every worker answers the same values and a
dashboard aggregates them with ``max`` (not ``sum``) across workers.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from typing import Any, cast

import redis
import structlog
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from worker import keyspace, kombuadapter
from worker.delivery.routing import all_queues, broker_config
from worker.execution.flow.metrics import DeferralCollector
from worker.journal.stats import LAG_BUCKETS
from worker.ports import PortTaken, port_taken, taken_message
from worker.redisconn import REDIS_ERRORS, store_client, sync_client
from worker.settings import Settings

log = structlog.get_logger(__name__)

_COUNTERS = {
    "handled": ("ims_worker_events_handled", "Events whose handlers all succeeded, by source and type"),
    "failed": ("ims_worker_task_failures", "Task attempts in which a handler failed, by source and type"),
    "retried": ("ims_worker_task_retries", "Retries scheduled, by source and type"),
    "implausible_time": (
        "ims_worker_event_time_implausible",
        "Handled events whose own time lies over 7 days before or 5 minutes after their receipt, left out of "
        "ims_worker_event_to_handled_seconds (the event keeps the time as sent), by source and type",
    ),
    "deadlettered": (
        "ims_worker_dead_lettered",
        "Entries added to the dead-letter store, by source and type",
    ),
}
_LAGS = {
    "receipt_lag": ("ims_worker_receipt_to_handled_seconds", "From receipt (consumer or shim) to handled"),
    "event_lag": ("ims_worker_event_to_handled_seconds", "From the provider's event time to handled"),
}


class RedisCollector(Collector):
    def __init__(
        self,
        client: redis.Redis,
        queues: list[str],
        broker: redis.Redis | None = None,
        *,
        unacked_key: str | None = None,
        deadletter_bounds: tuple[int, int] = (10_000, 16 * 1024 * 1024),
    ) -> None:
        self._client = client  # the store: dead letters, outbox, journal, counters
        self._bounds = deadletter_bounds  # per source: entries, bytes
        self._broker = broker or client  # the queues
        self._queues = queues
        self._unacked_key = unacked_key or kombuadapter.unacked_key()  # as the broker channel names it

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("ims_worker_redis_up", "1 if the worker's metrics could read Redis")
        try:
            with self._broker.pipeline(transaction=False) as pipe:
                for queue in self._queues:
                    pipe.llen(queue)
                pipe.hlen(self._unacked_key)
                queued = pipe.execute()
            with self._client.pipeline(transaction=False) as pipe:
                pipe.xlen(keyspace.DEADLETTERS)
                pipe.hlen(keyspace.OUTBOX)
                pipe.zcard(keyspace.JOURNAL_INDEX)
                pipe.hgetall(keyspace.DEADLETTER_USAGE)
                pipe.hgetall(keyspace.STATS)
                replies = queued + pipe.execute()
        except REDIS_ERRORS:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        backlog = GaugeMetricFamily(
            "ims_worker_queue_backlog", "Task messages waiting in a queue", labels=["queue"]
        )
        for queue, length in zip(self._queues, replies, strict=False):
            backlog.add_metric([queue], float(length))
        yield backlog
        unacked, deadletters, in_flight, journaled = replies[len(self._queues) : len(self._queues) + 4]
        yield _gauge(
            "ims_worker_queue_unacked", "Task messages delivered to a worker, not yet acknowledged", unacked
        )
        yield _gauge("ims_worker_deadletters", "Entries in the dead-letter store", deadletters)
        yield _gauge(
            "ims_worker_outbox_in_flight", "Published task messages whose task has not finished", in_flight
        )
        yield _gauge("ims_worker_journal_events", "Events in the journal's index", journaled)
        yield self._usage(cast(dict[bytes, bytes], replies[-2]))
        yield from _stats(cast(dict[bytes, bytes], replies[-1]))

    def _usage(self, raw: dict[bytes, bytes]) -> Metric:
        """How full each source's share of the dead-letter store is: the larger of entries and bytes, as a
        fraction of its bound (at 1 nothing more is kept; the alert fires at 0.8)."""
        family = GaugeMetricFamily(
            "ims_worker_deadletter_usage_ratio",
            "Per source, the fuller of entries and bytes of the dead-letter store over their bound "
            "(at 1 new dead letters are refused and stay where they were)",
            labels=["source"],
        )
        limits = {"n": self._bounds[0], "bytes": self._bounds[1]}
        ratios: dict[str, float] = {}
        for field, value in raw.items():
            source, _, what = field.decode().rpartition("|")
            if what in limits:
                ratios[source] = max(ratios.get(source, 0.0), int(value) / limits[what])
        for source, ratio in sorted(ratios.items()):
            family.add_metric([source], ratio)
        return family


def _gauge(name: str, documentation: str, value: Any) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation)
    family.add_metric([], float(value))
    return family


def _stats(raw: dict[bytes, bytes]) -> Iterator[Metric]:
    fields = {k.decode(): float(v) for k, v in raw.items()}
    counters = {
        kind: CounterMetricFamily(name, doc, labels=["source", "type"])
        for kind, (name, doc) in _COUNTERS.items()
    }
    lags: dict[str, dict[str, dict[str, float]]] = {kind: {} for kind in _LAGS}
    for field, value in fields.items():
        kind, _, rest = field.partition("|")
        if kind in counters:
            source, _, event_type = rest.partition("|")
            counters[kind].add_metric([source, event_type], value)
        elif kind.endswith("_bucket") and kind[: -len("_bucket")] in lags:
            source, _, bound = rest.partition("|")
            lags[kind[: -len("_bucket")]].setdefault(source, {})[bound] = value
    yield from counters.values()
    for kind, (name, doc) in _LAGS.items():
        family = HistogramMetricFamily(name, doc, labels=["source"])
        for source, buckets in sorted(lags[kind].items()):
            cumulative, rows = 0.0, []
            for bound in [*map(repr, LAG_BUCKETS), "+Inf"]:
                cumulative += buckets.get(bound, 0.0)
                rows.append((bound, cumulative))
            total = fields.get(f"{kind}_sum|{source}", 0.0)
            family.add_metric([source], rows, sum_value=total)
        yield family


_started: bool = False


def serve(settings: Settings) -> int | None:
    """Start the endpoint once per process; returns its port (None when disabled or already started)."""
    global _started  # noqa: PLW0603 - one endpoint per worker main process
    if _started or not settings.worker_metrics_port or not settings.broker_is_redis:
        return None

    registry = CollectorRegistry(auto_describe=False)
    store = store_client(settings)
    same = settings.broker_url == settings.effective_redis_url
    broker = None if same else sync_client(settings.broker_url, settings)
    unacked = kombuadapter.unacked_key(broker_config(settings)["broker_transport_options"])
    bounds = (settings.deadletter_max_entries_per_source, settings.deadletter_max_bytes_per_source)
    queues = all_queues(settings)
    collector = RedisCollector(store, queues, broker, unacked_key=unacked, deadletter_bounds=bounds)
    registry.register(collector)
    registry.register(DeferralCollector(store))  # flow control's deferrals by handler and reason (fleet-wide)
    try:
        start_http_server(settings.worker_metrics_port, settings.worker_metrics_host, registry=registry)
    except (
        OSError
    ) as exc:  # a second worker on the same host: one endpoint is enough (the numbers are global)
        log.warning(
            "worker.metrics.unavailable", port=settings.worker_metrics_port, setting=SETTING, error=str(exc)
        )
        return None
    _started = True
    log.info("worker.metrics.started", host=settings.worker_metrics_host, port=settings.worker_metrics_port)
    return settings.worker_metrics_port


SETTING = "IMS_WORKER_WORKER_METRICS_PORT (0 turns it off)"


def _ours(host: str, port: int) -> bool:
    """Whether ``host:port`` is another worker's /metrics (several workers on one host share one endpoint)."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=2) as answer:
            return b"ims_worker_redis_up" in answer.read(1 << 20)
    except (OSError, ValueError):
        return False


def check_port(settings: Settings) -> None:
    """At worker start: exit 2 with one line when the metrics port is held by something that is not ours."""
    if not settings.worker_metrics_port or not settings.broker_is_redis:
        return
    host, port = settings.worker_metrics_host, settings.worker_metrics_port
    if not port_taken(host, port):
        return
    probe = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104 - comparing, not binding
    if _ours(probe, port):
        log.info("worker.metrics.shared", port=port, detail="another worker on this host serves /metrics")
        return
    raise PortTaken(taken_message("celery worker: the /metrics server", host, port, SETTING))


def on_worker_ready(sender: Any = None, **_: Any) -> None:
    settings = getattr(getattr(sender, "app", None), "settings", None)
    if isinstance(settings, Settings):
        serve(settings)
