"""The worker-crash recovery scenario, at DEFAULT lease settings (60 s visibility timeout, 10 s heartbeat).

Two Celery workers share the queues. Worker "worker" takes a long task first: an event whose ``record_all``
sleeps three leases (180 s). Worker "worker-a" joins, MNS load and a burst of one-second events keep both
busy, and "worker-a" is killed with kill -9 (main process and pool at once: nothing is acked, rejected or
restored, its heartbeat stops). Then, with the ledger:

* every event is handled exactly once per handler (a re-run is accepted only for a run of a killed pid, as
  in every scenario), nothing lost;
* the messages the killed worker held are delivered again (kombu marks them ``redelivered``; the task
  wrapper counts them in ``ims-worker:redeliveries:<task id>``) and handled within ``RECOVERY_BOUND``
  seconds of the kill: the recovery time is kill -> last of them handled;
* the long task, still running on the live worker for three leases, started once and succeeded once.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import redis

from tests.chaos.budget import Budget, results_dir
from tests.chaos.ledger import Faults, Sent, check, read_all
from tests.chaos.mns_traffic import MnsProducer
from tests.chaos.payloads import unique_payload
from tests.chaos.procs import children, wait_for
from tests.chaos.spec import SLOW_FIELD, started_key
from tests.chaos.stack import QUEUE, Keys, Stack
from worker.delivery.publish import Publisher
from worker.providers import normalize
from worker.settings import Settings

RECOVERY_BOUND = 90.0  # seconds, at default settings (docs/guarantees.md, "Delivery guarantees")
LEASE = Settings().visibility_timeout  # the default, which the stack does not override
LONG_TASK = 3 * LEASE
BURST = 24  # one-second events that keep both workers' children and prefetch busy at the kill
DRAIN_SECONDS = LONG_TASK + 60.0


def _publish(stack: Stack, sent: Sent, payloads: list[dict[str, Any]]) -> list[str]:
    events = [e for payload in payloads for e in normalize("ims", payload)]
    publisher = Publisher(Settings(broker_url=stack.redis_url))
    try:
        results = publisher.publish(events)
    finally:
        publisher.close()
    for result in results:
        sent.expect({result.event_id: result.type})
    return [e.id for e in events]


def _redelivered(client: redis.Redis) -> set[str]:
    prefix = "ims-worker:redeliveries:"
    return {k.decode()[len(prefix) :] for k in client.scan_iter(f"{prefix}*", count=1000)}


def run_recovery(budget: Budget, workdir: Path, profile: str = "cpu") -> dict[str, Any]:
    """``profile`` "io": both workers in the threads preset (32 threads each, no pool flags)."""
    name = "worker-kill-defaults" if profile == "cpu" else f"worker-kill-defaults-{profile}"
    rng = budget.rng(name)
    stack = Stack(
        workdir, Keys.generate(rng), concurrency=2, emulator_seed=rng.randrange(2**31), profile=profile
    )
    burst_size = BURST if profile == "cpu" else 4 * BURST  # 64 threads and their prefetch to keep busy
    sent, lock = Sent(), threading.Lock()
    faults = Faults()
    problems: list[str] = []
    facts: dict[str, Any] = {"lease_seconds": LEASE, "long_task_seconds": LONG_TASK}
    mns = MnsProducer(
        stack.mns,
        QUEUE,
        seed=rng.getrandbits(64),
        sent=sent,
        lock=lock,
        rate=30.0,
        seconds=budget.load_seconds,
        duplicate_rate=0.04,
    )
    client: redis.Redis | None = None
    try:
        stack.start()
        client = redis.Redis.from_url(stack.redis_url)
        slow = unique_payload("ims", 900_000)
        slow[SLOW_FIELD] = LONG_TASK
        (slow_id,) = _publish(stack, sent, [slow])
        if not wait_for(lambda: client.get(started_key(slow_id)) == b"1", 30):
            problems.append("the long task did not start on the first worker")
        stack.services["worker-a"] = stack.worker_service("worker-a")
        stack.services["worker-a"].start()
        worker_a = stack.services["worker-a"]
        up = (lambda: " ready." in worker_a.output()) if profile == "io" else None
        if not wait_for(up or (lambda: len(children(worker_a.pid or 0)) >= 2), 60):
            problems.append("worker-a did not start")
        time.sleep(3)  # it consumes: its ready line comes after its pool
        mns.start()
        burst = []
        for i in range(burst_size):
            payload = unique_payload("ims", 910_000 + i)
            # io: 3 s, so that 64 threads are still busy with them when worker-a is killed (4 s in)
            payload[SLOW_FIELD] = 1 if profile == "cpu" else 3
            burst.append(payload)
        _publish(stack, sent, burst)
        time.sleep(budget.load_seconds / 2)
        victim = stack.services["worker-a"]
        pids = [victim.pid or 0, *children(victim.pid or 0)]
        held_at_kill = client.hlen("unacked")
        killed_at = time.time()
        victim.kill9()
        faults.worker_kills += [(killed_at, pid) for pid in pids]
        mns.join(budget.load_seconds + 30)
        drained = stack.wait_idle(DRAIN_SECONDS, settle=3.0)
        if not drained:
            problems.append(f"not drained within {DRAIN_SECONDS:.0f}s")
        runs, dead = read_all(stack.redis_url)
        verdict = check(runs, dead, sent, faults)
        problems += verdict.problems
        problems += stack.crashed()
        redelivered = _redelivered(client)
        handled_at = [r.t for r in runs if r.ok and r.task_id in redelivered]
        recovery = round(max(handled_at) - killed_at, 1) if handled_at else None
        if not redelivered:
            problems.append("the killed worker held no message: nothing was recovered, nothing measured")
        elif recovery is None or recovery > RECOVERY_BOUND:
            problems.append(f"recovery took {recovery}s, the bound is {RECOVERY_BOUND:.0f}s")
        slow_runs = [r for r in runs if r.event_id == slow_id and r.handler.endswith(":record_all")]
        starts = int(client.get(started_key(slow_id)) or 0)
        if starts != 1 or len(slow_runs) != 1:
            problems.append(f"the long task started {starts}x and ran {len(slow_runs)}x; expected once")
        facts.update(
            held_when_killed=held_at_kill,
            redelivered_messages=len(redelivered),
            recovery_seconds=recovery,
            long_task_starts=starts,
            long_task_runs=len(slow_runs),
            ledger=verdict.as_dict(),
            events_sent=verdict.events_expected,
            events_handled=verdict.events_handled,
            events_dead_lettered=verdict.events_dead_lettered,
            lost=len(verdict.lost),
            reruns_after_crash=len(verdict.reruns_after_crash),
        )
    finally:
        if client is not None:
            client.close()
        stack.stop()
    if mns.error is not None:
        problems.append(f"mns producer failed: {mns.error!r}")
    summary = {
        "scenario": name,
        "profile": profile,
        "broker": "redis",
        "seed": budget.seed,
        "command": f"{budget.command()} PYTEST_ARGS='-k recovery'"
        if profile == "cpu"
        else f"{budget.command().replace('make chaos', 'make chaos-full')} PYTEST_ARGS='-k io_profile'",
        "result": "pass" if not problems else "fail",
        "problems": problems[:100],
        **facts,
    }
    path = results_dir() / f"{budget.mode}-{name}.json"
    path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "ledger"}, indent=1))
    if problems:
        print(stack.tail(40))
    return summary
