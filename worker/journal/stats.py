"""Fleet-wide worker counters kept in Redis (hash ``ims-worker:stats``), written by the ledger's own scripts.

Celery runs handlers in pool children; counting in Redis, in the scripts every task runs anyway, gives one set
of numbers for all workers on all hosts without a multiprocess registry and without an extra round trip.
Field names: ``<metric>|<label>|<label>``; latency histograms keep per-bucket (not cumulative) counts.
"""

from __future__ import annotations

import time
from datetime import datetime

from worker.events import Event

# An event time this far before its receipt, or this far after it, is not a latency but a sender's mistake or
# an attack: one signed event dated year 1 added 6.4e10 s to the histogram's sum. 7 days is the longest MNS
# keeps a message (so the longest a genuine event can wait); 5 minutes is the signature window's clock skew.
PLAUSIBLE_PAST_SECONDS = 7 * 86400
PLAUSIBLE_FUTURE_SECONDS = 300
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 86400.0)


def _bucket(seconds: float) -> str:
    for bound in LAG_BUCKETS:
        if seconds <= bound:
            return repr(bound)
    return "+Inf"


def _lag(fields: dict[str, float], name: str, source: str, since: datetime | None, now: float) -> None:
    if since is None:
        return
    seconds = max(0.0, now - since.timestamp())
    fields[f"{name}_bucket|{source}|{_bucket(seconds)}"] = 1
    fields[f"{name}_sum|{source}"] = round(seconds, 3)
    fields[f"{name}_count|{source}"] = 1


def attempt_stats(event: Event, *, handled: bool, failed: bool) -> dict[str, float]:
    """Counters for one finished task attempt: handled (with its latencies) and/or failed."""
    fields: dict[str, float] = {}
    key = f"{event.source}|{event.type}"
    if failed:
        fields[f"failed|{key}"] = 1
    if handled:
        now = time.time()
        fields[f"handled|{key}"] = 1
        _lag(fields, "receipt_lag", event.source, event.received_at, now)
        if plausible_event_time(event, now):
            _lag(fields, "event_lag", event.source, event.occurred_at, now)
        else:  # the event keeps its time as sent; only the latency metric leaves it out
            fields[f"implausible_time|{key}"] = 1
    return fields


def plausible_event_time(event: Event, now: float) -> bool:
    """Whether the event's own time is one a latency can be measured from (None: nothing to measure)."""
    if event.occurred_at is None:
        return True
    received = event.received_at.timestamp() if event.received_at is not None else now
    lead = received - event.occurred_at.timestamp()
    return -PLAUSIBLE_FUTURE_SECONDS <= lead <= PLAUSIBLE_PAST_SECONDS


def retried_stats(event: Event) -> dict[str, float]:
    return {f"retried|{event.source}|{event.type}": 1}
