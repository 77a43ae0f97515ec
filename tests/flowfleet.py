"""Helpers for the fleet flow-control tests: two real Celery workers, the runs the test handlers recorded, and
the checks on them (overlaps per key, starts per sliding window, runs at once)."""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import redis

from tests.celery_worker import CeleryWorker, running_worker, wait_until
from tests.flowutil import upload_event
from tests.plugins.flow import RUNS
from worker.delivery.publish import Publisher
from worker.events import Event
from worker.settings import Settings

FLOW_PLUGIN = "tests.plugins.flow"


@dataclass(frozen=True)
class Run:
    handler: str
    key: str
    event_id: str
    pid: int
    start: float
    end: float


def fleet_env(redis_url: str, **extra: str) -> dict[str, str]:
    return {
        "IMS_WORKER_BROKER_URL": redis_url,
        "IMS_WORKER_HANDLER_MODULES": FLOW_PLUGIN,
        **extra,
    }


PROFILES = ("cpu", "io")  # the fleet tests run in both worker profiles (prefork, threads)


@contextlib.contextmanager
def two_workers(
    env: dict[str, str], concurrency: int = 4, profile: str = "cpu"
) -> Iterator[tuple[CeleryWorker, CeleryWorker]]:
    """Two workers: ``cpu``: prefork with ``concurrency`` processes each; ``io``: started as in production,
    no pool flags, ``IMS_WORKER_WORKER_PROFILE=io`` (threads x32 each)."""
    if profile == "io":
        env = {**env, "IMS_WORKER_WORKER_PROFILE": "io"}
    pool = None if profile == "io" else "prefork"
    with (
        running_worker(env, concurrency=concurrency, pool=pool) as a,
        running_worker(env, concurrency=concurrency, pool=pool) as b,
    ):
        yield a, b


def publish(redis_url: str, events: Sequence[Event]) -> None:
    publisher = Publisher(Settings(broker_url=redis_url))
    try:
        results = publisher.publish(events)
    finally:
        publisher.close()
    assert all(r.enqueued for r in results)


def runs(client: redis.Redis, handler: str) -> list[Run]:
    found = [json.loads(raw) for raw in client.lrange(RUNS, 0, -1)]
    return [Run(r["h"], r["k"], r["id"], r["pid"], r["start"], r["end"]) for r in found if r["h"] == handler]


def overlaps_per_key(found: Sequence[Run]) -> list[tuple[Run, Run]]:
    by_key: dict[str, list[Run]] = defaultdict(list)
    for run in found:
        by_key[run.key].append(run)
    bad: list[tuple[Run, Run]] = []
    for key_runs in by_key.values():
        ordered = sorted(key_runs, key=lambda r: r.start)
        bad += [(a, b) for a, b in itertools.pairwise(ordered) if b.start < a.end]
    return bad


def most_starts_in_a_window(found: Sequence[Run], window: float) -> int:
    """The most starts in any half-open window [t, t + window) (it suffices to try each start as t)."""
    starts = sorted(r.start for r in found)
    best, j = 0, 0
    for i, start in enumerate(starts):
        j = max(j, i)
        while j < len(starts) and starts[j] < start + window:
            j += 1
        best = max(best, j - i)
    return best


def most_at_once(found: Sequence[Run]) -> int:
    edges = sorted(
        [(r.start, 1) for r in found] + [(r.end, -1) for r in found]
    )  # an end sorts before a start
    best = current = 0
    for _, step in edges:
        current += step
        best = max(best, current)
    return best


@dataclass(frozen=True)
class KillResult:
    resumed_after: float  # from the kill to the first start of another event of the dead holder's key
    recovered_after: float  # from the kill to the dead holder's own event, run again to completion
    key_runs: list[Run]


def kill_a_key_holder(
    redis_url: str,
    env: dict[str, str],
    client: redis.Redis,
    *,
    await_the_dead: bool = True,
    profile: str = "cpu",
) -> KillResult:
    """Two workers; the event holding key K hangs in one of them, which is then killed (kill -9, whole
    worker); K's other events wait in the survivor and must resume once the dead holder's lease lapses.
    With ``await_the_dead``, also wait until the dead worker's own event came back and was handled.

    The dead worker's message was seen to come back twice at about the same time (same task id, run 4 ms apart
    in two children; presumably kombu's restore and the outbox re-enqueue): the ledger lets a task id take
    over its own claim, so only the key lock's per-run token keeps the two copies from running the handler at
    once. "Exactly once" here checks that."""
    with two_workers(env, concurrency=2, profile=profile) as workers:
        hung = upload_event("FileUploadComplete", "media-k", 0, user_data="hang")
        publish(redis_url, [hung])
        wait_until(lambda: client.get("flowtest:hang_pid"), timeout=30)
        holder_pid = int(client.get("flowtest:hang_pid") or 0)
        # prefork: the pool child running it; threads: the worker process itself
        (victim,) = [w for w in workers if holder_pid in (w.pid, *w.child_pids())]
        others = [upload_event("FileUploadComplete", "media-k", i) for i in range(1, 6)]
        publish(redis_url, others)
        time.sleep(1.0)
        assert runs(client, "keyed") == []  # all waiting for K
        victim.kill()
        killed_at = time.time()
        wait_until(lambda: len(runs(client, "keyed")) >= 5, timeout=120, interval=0.1)
        resumed = min(r.start for r in runs(client, "keyed")) - killed_at
        expected = [hung.id, *(e.id for e in others)] if await_the_dead else [e.id for e in others]
        # By id, not by count: the dead holder's own event may run (and count) before the last awaited one.
        wait_until(
            lambda: set(expected) <= {r.event_id for r in runs(client, "keyed")}, timeout=300, interval=0.2
        )
        key_runs = runs(client, "keyed")
        recovered = next((r.end - killed_at for r in key_runs if r.event_id == hung.id), float("nan"))
    ran = sorted(r.event_id for r in key_runs)
    if not await_the_dead and ran.count(hung.id) == 1:
        # Not awaited, but allowed: the dead worker's event returns with the delivery lease, together with any
        # of K's events the dead worker had prefetched, so it may well have run by the time those have.
        ran.remove(hung.id)
    assert ran == sorted(expected), (key_runs, expected)
    return KillResult(resumed_after=resumed, recovered_after=recovered, key_runs=key_runs)
