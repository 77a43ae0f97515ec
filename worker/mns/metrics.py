"""Prometheus metrics of the MNS consumer."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECEIVED = Counter("ims_worker_mns_received_total", "Messages received from MNS", ["queue"])
PUBLISHED = Counter("ims_worker_mns_published_total", "Events enqueued onto the broker", ["queue"])
DUPLICATES = Counter("ims_worker_mns_duplicates_total", "Events already enqueued (absorbed)", ["queue"])
DEAD_LETTERED = Counter(
    "ims_worker_mns_dead_lettered_total", "Messages put in the dead-letter store", ["queue", "reason"]
)
DELETED = Counter("ims_worker_mns_deleted_total", "Messages deleted from MNS", ["queue"])
DELETE_FAILURES = Counter(
    "ims_worker_mns_delete_failures_total", "Receipt handles MNS refused to delete", ["queue", "code"]
)
ERRORS = Counter("ims_worker_mns_errors_total", "Errors at the consumer loop boundary", ["queue", "kind"])
BATCH_SECONDS = Histogram(
    "ims_worker_mns_batch_seconds",
    "Time from receive to delete of one batch",
    ["queue"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
LAST_POLL = Gauge(
    "ims_worker_mns_last_successful_poll_timestamp_seconds",
    "Unix time of the last successful poll",
    ["queue"],
)
BACKLOG = Gauge(
    "ims_worker_mns_backlog",
    "Task messages waiting in a target Celery queue, as last read by the backpressure check",
    ["queue"],
)
PAUSED = Gauge("ims_worker_mns_paused", "1 while the pollers stop receiving (backlog or Redis memory)")
PAUSES = Counter("ims_worker_mns_pauses_total", "Times the pollers stopped receiving", ["reason"])
