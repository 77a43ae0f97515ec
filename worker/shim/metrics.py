"""Prometheus metrics of the shim, on a registry of its own (one per app, so tests and apps do not collide).

With several worker processes (``ims-worker shim --workers N``) each process counts for itself; when
``PROMETHEUS_MULTIPROC_DIR`` is set (the CLI sets it for N > 1) ``/metrics`` aggregates every process's files.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.multiprocess import MultiProcessCollector

from worker.boundedhttp import DROPPED

if TYPE_CHECKING:
    from worker.shim.spool import Spool

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Enqueueing is one Redis round trip: sub-millisecond on loopback, a few ms across a network.
_ENQUEUE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ShimMetrics:
    """Requests by provider and status, auth failures, unsigned requests, dead letters, enqueue latency, and
    the connections the bounded protocol dropped."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        # Read once: prometheus_client itself decides file-backed values when it is first imported.
        self.multiprocess = "PROMETHEUS_MULTIPROC_DIR" in os.environ
        self.requests = Counter(
            "ims_worker_shim_requests_total",
            "Webhook requests answered, by provider and HTTP status",
            ["provider", "status"],
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "ims_worker_shim_auth_failures_total",
            "Webhook requests refused by authentication, by provider and reason",
            ["provider", "reason"],
            registry=self.registry,
        )
        self.enqueue_seconds = Histogram(
            "ims_worker_shim_enqueue_seconds",
            "Time to publish a request's events to Redis (confirmed)",
            ["provider"],
            buckets=_ENQUEUE_BUCKETS,
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "ims_worker_shim_request_seconds",
            "Time from the start of a webhook request to its answer",
            ["provider"],
            buckets=_REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.events = Counter(
            "ims_worker_shim_events_total",
            "Events received over HTTP, by provider and outcome (enqueued or duplicate)",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self.unsigned_requests = Counter(
            "ims_worker_shim_unsigned_requests_total",
            "Unsigned requests to providers named in IMS_WORKER_SHIM_ALLOW_UNSIGNED, by outcome "
            "(accepted, or refused by the network allowlist)",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "ims_worker_shim_dead_lettered_total",
            "Authenticated requests that failed parsing or validation, kept as dead letters (outcome: new, "
            "or repeat of a body already kept)",
            ["provider", "outcome"],
            registry=self.registry,
        )

        self.spooled = Counter(
            "ims_worker_shim_spooled_events_total",
            "Events answered 200 from the local spool because Redis could not take them in time",
            ["provider"],
            registry=self.registry,
        )
        self.drained = Counter(
            "ims_worker_shim_spool_drained_events_total",
            "Spooled events re-published to Redis by the drainer",
            ["provider"],
            registry=self.registry,
        )
        self.spool_refusals = Counter(
            "ims_worker_shim_spool_refused_total",
            "Requests answered 503 because the spool could not take them (spool_full, spool_unavailable)",
            ["provider", "reason"],
            registry=self.registry,
        )
        # Per process ("liveall": one series per pid under --workers N), set on every change and render.
        self.spool_entries = Gauge(
            "ims_worker_shim_spool_entries",
            "Requests held in this process's spool files, waiting for Redis",
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self.spool_bytes = Gauge(
            "ims_worker_shim_spool_bytes",
            "Bytes of events held in this process's spool files",
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self.spool_oldest_age = Gauge(
            "ims_worker_shim_spool_oldest_age_seconds",
            "Age of the oldest request in this process's spool (0: empty)",
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self.spool_source: Callable[[], Spool | None] = lambda: None

        self.registry.register(DROPPED)  # the protocol's refused and timed-out connections

        self._children: dict[tuple[Counter | Histogram, tuple[str, ...]], Any] = {}

    def render(self) -> bytes:
        """The text exposition; aggregated over processes in multiprocess mode."""
        spool = self.spool_source()
        if spool is not None:
            self.spool_state(spool)
        if self.multiprocess:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)

    # Label lookups cost a lock and a tuple hash each; the children per provider are cached on first use.
    def request(self, provider: str, status: int, seconds: float) -> None:
        self._child(self.requests, provider, str(status)).inc()
        self._child(self.request_seconds, provider).observe(seconds)

    def enqueued(self, provider: str, seconds: float, enqueued: int, duplicates: int) -> None:
        self._child(self.enqueue_seconds, provider).observe(seconds)
        if enqueued:
            self._child(self.events, provider, "enqueued").inc(enqueued)
        if duplicates:
            self._child(self.events, provider, "duplicate").inc(duplicates)

    def unsigned(self, provider: str, outcome: str) -> None:
        self._child(self.unsigned_requests, provider, outcome).inc()

    def dead_lettered(self, provider: str, new: bool) -> None:
        self._child(self.dead_letters, provider, "new" if new else "repeat").inc()

    def spooled_events(self, provider: str, count: int) -> None:
        self._child(self.spooled, provider).inc(count)

    def spool_drained(self, provider: str, count: int) -> None:
        self._child(self.drained, provider).inc(count)

    def spool_refused(self, provider: str, reason: str) -> None:
        self.spool_refusals.labels(provider, reason).inc()

    def process_gone(self, pid: int) -> None:
        """A dead process's spool was adopted: its per-process gauges leave the aggregated ``/metrics``."""
        if self.multiprocess and pid > 0 and pid != os.getpid():
            multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]

    def spool_state(self, spool: Spool) -> None:
        self.spool_entries.set(spool.depth)
        self.spool_bytes.set(spool.bytes)
        oldest = spool.oldest_ms()
        self.spool_oldest_age.set(0 if oldest is None else max(0.0, time.time() - oldest / 1000))

    def auth_failure(self, provider: str, reason: str) -> None:
        self.auth_failures.labels(provider, reason).inc()

    def _child(self, metric: Counter | Histogram, *labels: str) -> Any:
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child
