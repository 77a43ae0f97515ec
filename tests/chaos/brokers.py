"""Broker chaos: the same load and ledger verdict on RabbitMQ and on Sentinel-managed Redis, one fault each.

A producer thread publishes IMS events through the real ``Publisher`` (the Lua script on Redis, publisher
confirms on RabbitMQ) and behaves like MNS: a batch that raised ``BrokerUnavailable`` is published again until
it is taken; an event counts as *sent* once a publish of it returned (upstream would then be acknowledged).
Real ``celery worker`` processes run the ledger plugin, whose stream lives on a separate Redis that no fault
touches, so the evidence survives a failover that loses writes. The verdict per sent event: handled once, re-
run (a handler succeeded more than once), delayed (not handled yet, but its task message still sits in a
queue, in kombu's ``unacked`` hash or in the outbox, so it comes back later), or lost (no trace left
anywhere). Recovery time: from the fault until every event sent before it has been handled.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from tests.chaos.budget import results_dir
from tests.chaos.ledger import read_ledger
from tests.chaos.spec import handlers_for
from worker import keyspace
from worker.delivery.publish import Publisher
from worker.errors import BrokerUnavailable
from worker.events import Event
from worker.providers import normalize
from worker.settings import Settings

BATCH = 5
DRAIN_SECONDS = 120.0
# Longer than the lease (60 s) plus kombu's restore interval: a dead holder's message comes back within it.
STALL_SECONDS = 90.0


def make_event(run: str, n: int) -> Event:
    body = {
        "EventType": "FileUploadComplete",
        "UserId": 1833220977560785,
        "EventTime": "2026-11-26T08:48:14Z",
        "MessageBody": {
            "Status": "Success",
            "FileUrl": f"https://example.invalid/{run}/{n}.mp4",
            "MediaId": f"{run}-{n:06d}",
            "AppId": "app-1000000",
            "Size": "5510872",
            "MediaType": "video",
        },
    }
    (event,) = normalize("ims", json.dumps(body).encode())
    return event


class Producer(threading.Thread):
    """``rate`` events per second for ``seconds``, in batches; every batch retried until it is taken."""

    def __init__(self, settings: Settings, run: str, rate: float, seconds: float) -> None:
        super().__init__(name="producer", daemon=True)
        self.settings, self.run_id, self.rate, self.seconds = settings, run, rate, seconds
        self.sent: dict[str, float] = {}  # event id -> wall clock of the publish that returned
        self.failures: list[tuple[float, str]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the scenario
            self.error = exc

    def _run(self) -> None:
        publisher = Publisher(self.settings)
        start, n = time.monotonic(), 0
        give_up = start + self.seconds + 60
        try:
            while time.monotonic() - start < self.seconds:
                batch = [make_event(self.run_id, n + i) for i in range(BATCH)]
                n += BATCH
                while True:
                    try:
                        publisher.publish(batch)
                    except BrokerUnavailable as exc:
                        self.failures.append((time.time(), str(exc)[:200]))
                        if time.monotonic() > give_up:
                            raise
                        time.sleep(0.2)
                        continue
                    now = time.time()
                    self.sent.update((e.id, now) for e in batch)
                    break
                time.sleep(max(0.0, start + n / self.rate - time.monotonic()))
        finally:
            publisher.close()


@dataclass
class Outcome:
    scenario: str
    broker: str
    settings: str
    sent: int = 0
    handled_once: int = 0
    reruns: int = 0  # events with at least one handler that succeeded more than once
    delayed: int = 0  # not handled at the end, task message still in Redis (comes back after its timeout)
    lost: int = 0
    recovery_seconds: float | None = None  # None: not every event sent before the fault was handled
    max_delay_seconds: float | None = None  # the longest publish -> handled time of any handled event
    publish_failures: int = 0
    publish_outage_seconds: float = 0.0
    fault_at: float = 0.0
    notes: list[str] = field(default_factory=list)
    lost_ids: list[str] = field(default_factory=list)
    # When each lost event was acknowledged, in seconds from the fault: negative before it, positive after.
    lost_sent_after_fault_seconds: list[float] = field(default_factory=list)

    def row(self) -> str:
        recovery = (
            "not within the drain" if self.recovery_seconds is None else f"{self.recovery_seconds:.1f} s"
        )
        return (
            f"| {self.scenario} | {self.broker} ({self.settings}) | {self.sent} | {self.handled_once} | "
            f"{self.reruns} | {self.lost} (+{self.delayed} delayed) | {recovery} |"
        )

    def save(self) -> None:
        """The JSON summary, in the columns of ``python -m tests.chaos.report recovery``."""
        data = asdict(self) | {
            "broker": f"{self.broker} ({self.settings})",
            "events_sent": self.sent,
            "events_handled": self.sent - self.lost - self.delayed,
            "events_dead_lettered": 0,
            "reruns_after_crash": self.reruns,
            "lost": self.lost + self.delayed,  # not handled by the end of the run
        }
        name = f"chaos-brokers-{self.scenario}-{self.broker}-{self.settings}"
        name = "".join(c if c.isalnum() or c == "-" else "_" for c in name)
        (results_dir() / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")


def ok_runs(ledger: redis.Redis) -> tuple[Counter[tuple[str, str]], dict[str, float]]:
    """(event, handler) -> successful runs; event -> when its last handler first succeeded."""
    counts: Counter[tuple[str, str]] = Counter()
    first: dict[tuple[str, str], float] = {}
    for run in read_ledger(ledger):
        if run.ok:
            counts[run.event_id, run.handler] += 1
            first.setdefault((run.event_id, run.handler), run.t)
    done: dict[str, float] = {}
    for (event_id, _), t in first.items():
        done[event_id] = max(done.get(event_id, 0.0), t)
    return counts, done


def complete(event_id: str, counts: Counter[tuple[str, str]]) -> bool:
    return all(counts[event_id, h] for h in handlers_for("ims.FileUploadComplete"))


def still_queued(store: redis.Redis, queues: list[str]) -> str:
    """Every task message still held in Redis, as one string to search event ids in."""
    parts: list[bytes] = []
    for queue in queues:
        parts += store.lrange(queue, 0, -1)  # type: ignore[arg-type]
    parts += store.hvals("unacked")  # type: ignore[arg-type]
    parts += store.hvals(keyspace.OUTBOX)  # type: ignore[arg-type]
    return b"\n".join(parts).decode(errors="replace")


def drain(ledger: redis.Redis, sent: dict[str, float], timeout: float = DRAIN_SECONDS) -> None:
    """Until every sent event is handled, ``timeout`` passes, or the ledger stops moving for ``STALL`` s
    (what is missing then waits for a timeout measured in minutes or hours: the verdict says where it is)."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        counts, _ = ok_runs(ledger)
        if all(complete(e, counts) for e in sent):
            return
        total = sum(counts.values())
        if total != last:
            last, since = total, time.monotonic()
        elif time.monotonic() - since > STALL_SECONDS:
            return
        time.sleep(0.5)


def verdict(
    outcome: Outcome,
    producer: Producer,
    ledger: redis.Redis,
    store: Callable[[], redis.Redis] | None,
    queues: list[str],
) -> Outcome:
    counts, done = ok_runs(ledger)
    sent = producer.sent
    outcome.sent = len(sent)
    handlers = handlers_for("ims.FileUploadComplete")
    missing = [e for e in sent if not complete(e, counts)]
    outcome.reruns = sum(1 for e in sent if any(counts[e, h] > 1 for h in handlers))
    outcome.handled_once = sum(1 for e in sent if all(counts[e, h] == 1 for h in handlers))
    held = ""
    if missing and store is not None:
        client = store()
        try:
            held = still_queued(client, queues)
        finally:
            client.close()
    for event_id in missing:
        if event_id in held:
            outcome.delayed += 1
        else:
            outcome.lost += 1
            outcome.lost_ids.append(event_id)
            outcome.lost_sent_after_fault_seconds.append(round(sent[event_id] - outcome.fault_at, 3))
    delays = [done[e] - t for e, t in sent.items() if e in done]
    outcome.max_delay_seconds = round(max(delays), 1) if delays else None
    before = [e for e, t in sent.items() if t <= outcome.fault_at]
    if before and all(e in done for e in before):
        outcome.recovery_seconds = round(max(0.0, max(done[e] for e in before) - outcome.fault_at), 1)
    outcome.publish_failures = len(producer.failures)
    if producer.failures:
        outcome.publish_outage_seconds = round(producer.failures[-1][0] - producer.failures[0][0], 1)
    if producer.error is not None:
        outcome.notes.append(f"producer failed: {type(producer.error).__name__}: {producer.error}")
    return outcome


def iterate(seconds: float, step: float = 0.1) -> Iterator[float]:
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        yield elapsed
        time.sleep(step)


def describe(outcome: Outcome) -> dict[str, Any]:
    return {k: v for k, v in asdict(outcome).items() if k not in ("lost_ids",)}
