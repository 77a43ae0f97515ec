"""A poller's running totals, summed into one "mns.progress" line every few seconds."""

from __future__ import annotations

import time

import structlog

from worker.mns.batch import BatchOutcome

log = structlog.get_logger(__name__)

# Each poller sums its batches into one "mns.progress" line this often (and when it stops). A line per
# batch ("mns.batch", at debug level) would be hundreds a second under load, and cost 4% of the CPU.
PROGRESS_INTERVAL_SECONDS = 10.0


class Progress:
    """Counts since the last "mns.progress" line."""

    FIELDS = ("batches", "received", "published", "duplicates", "dead_lettered", "deleted")

    def __init__(self) -> None:
        self.counts = dict.fromkeys(self.FIELDS, 0)
        self.since = time.monotonic()

    def add(self, received: int, outcome: BatchOutcome) -> None:
        counts = self.counts
        counts["batches"] += 1
        counts["received"] += received
        counts["published"] += outcome.published
        counts["duplicates"] += outcome.duplicates
        counts["dead_lettered"] += outcome.dead_lettered
        counts["deleted"] += len(outcome.handles_to_delete)

    def report(self, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.since < PROGRESS_INTERVAL_SECONDS:
            return
        if self.counts["batches"]:
            log.info("mns.progress", **self.counts, interval_s=round(now - self.since, 1))
        self.counts = dict.fromkeys(self.FIELDS, 0)
        self.since = now
