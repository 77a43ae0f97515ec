"""Fault schedules: a thread that strikes at random (seeded) moments while the load runs, and records what it
did so the ledger check can tell the re-runs a crash makes unavoidable from real double handling.

Each scenario picks its strikes: ``kill`` (kill -9 of the consumer, the shim or a Celery pool child),
``redis`` (Redis restarted, gracefully or with kill -9, AOF on), ``mns`` (waves of 503s/500s, dropped
connections and responses, latency, partial BatchDelete failures) and ``redeliver`` (MNS deletes refused for a
while, so that published messages come back after their visibility timeout).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import redis

from tests.chaos.ledger import Faults
from tests.chaos.procs import wait_for
from tests.chaos.spec import LEDGER_STREAM
from tests.chaos.stack import Stack
from tests.servers import wait_for_port


@dataclass
class FaultRecord:
    faults: Faults = field(default_factory=Faults)
    counts: Counter[str] = field(default_factory=Counter)
    timeline: list[tuple[float, str]] = field(default_factory=list)

    def note(self, kind: str, detail: str = "") -> None:
        self.counts[kind] += 1
        self.timeline.append((round(time.time(), 3), f"{kind} {detail}".strip()))


Strike = Callable[["Chaos"], None]


class Chaos(threading.Thread):
    """Runs ``strikes`` (chosen at random) every ``pause`` seconds until ``seconds`` have passed."""

    def __init__(
        self,
        stack: Stack,
        strikes: list[Strike],
        *,
        seed: int,
        seconds: float,
        pause: tuple[float, float] = (1.0, 3.0),
        first_after: float = 1.0,
        opening: Strike | None = None,
    ) -> None:
        super().__init__(name="chaos", daemon=True)
        self.stack = stack
        self.strikes = strikes
        self.rng = random.Random(seed)
        self.seconds = seconds
        self.pause = pause
        self.first_after = first_after
        self.opening = opening
        self.record = FaultRecord()
        self.error: BaseException | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        stop_at = time.monotonic() + self.seconds
        try:
            self._halt.wait(self.first_after)
            if self.opening is not None and not self._halt.is_set():
                self.opening(self)
            while self.strikes and not self._halt.is_set() and time.monotonic() < stop_at:
                self.rng.choice(self.strikes)(self)
                self._halt.wait(self.rng.uniform(*self.pause))
        except BaseException as exc:  # reported by the scenario
            self.error = exc
        finally:
            self.heal()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=60)

    def sleep(self, low: float, high: float) -> None:
        self._halt.wait(self.rng.uniform(low, high))

    def heal(self) -> None:
        """Leave everything up and fault-free for the drain."""
        stack = self.stack
        if stack.redis.process is None:
            stack.redis.start()
            self.record.faults.outages[-1] = (self.record.faults.outages[-1][0], time.time())
        stack.mns.clear_faults()
        for name, service in stack.services.items():
            if service.process is None:
                service.start()
                self.record.note(f"{name}_restarts")


# --- strikes ---------------------------------------------------------------------------------------------
def kill_consumer(chaos: Chaos) -> None:
    _kill_service(chaos, "consumer")


def kill_shim(chaos: Chaos) -> None:
    _kill_service(chaos, "shim")


def _kill_service(chaos: Chaos, role: str) -> None:
    pid = chaos.stack.kill(role)
    if pid is None:
        return  # between a kill and the supervisor's restart: nothing to kill
    chaos.record.note(f"{role}_kills", f"pid {pid}")
    if not chaos.stack.supervised:
        chaos.sleep(0.2, 1.5)
        chaos.stack.restart(role)


def kill_worker_child(chaos: Chaos) -> None:
    """Half the time a random pool child; otherwise the one that has just written a ledger entry, which is
    most likely between a handler's success and its done marker: the window at-least-once cannot close."""
    target = None if chaos.rng.random() < 0.5 else _last_ledger_writer(chaos.stack)
    pid = chaos.stack.kill_worker_child(chaos.rng, prefer=target)
    if pid is not None:
        chaos.record.faults.worker_kills.append((time.time(), pid))
        # io profile: the threads pool has no children, the whole worker was killed (and is restarted)
        chaos.record.note(
            "worker_kills" if chaos.stack.profile == "io" else "worker_child_kills", f"pid {pid}"
        )


def _last_ledger_writer(stack: Stack) -> int | None:
    client = redis.Redis.from_url(stack.redis_url, socket_timeout=1)
    try:
        last = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrevrange(LEDGER_STREAM, count=1))
    except redis.RedisError:
        return None
    finally:
        client.close()
    return int(last[0][1][b"pid"]) if last else None


def restart_redis(chaos: Chaos) -> None:
    server = chaos.stack.redis
    hard = chaos.record.counts["redis_restart"] > chaos.record.counts["redis_kill9"]  # alternate the two
    began = time.time()
    if hard:
        server.kill()
    else:
        server.stop()
    chaos.record.faults.outages.append((began, began + 60))  # closed below, or by heal()
    chaos.record.note("redis_kill9" if hard else "redis_restart", "")
    chaos.sleep(0.3, 2.0)
    server.start()
    wait_for_port(server.port)
    chaos.record.faults.outages[-1] = (began, time.time())


def mns_fault_wave(chaos: Chaos) -> None:
    rng = chaos.rng
    faults = {
        "error_rate": rng.choice([0.0, 0.1, 0.3]),
        "drop_rate": rng.choice([0.0, 0.05, 0.15]),
        "drop_response_rate": rng.choice([0.0, 0.05, 0.15]),
        "latency_ms": rng.choice([0.0, 50.0, 300.0]),
        "partial_delete_rate": rng.choice([0.0, 0.1, 0.3]),
    }
    chaos.stack.mns.set_faults(**faults)
    chaos.record.note("mns_fault_waves", " ".join(f"{k}={v}" for k, v in faults.items() if v))
    if rng.random() < 0.3 and not chaos.stack.supervised:
        kill_consumer(chaos)  # and start it again while MNS misbehaves
    chaos.sleep(1.5, 4.0)
    chaos.stack.mns.clear_faults()


def restart_consumer_in_mns_outage(chaos: Chaos) -> None:
    """The consumer starts while every MNS request fails: it must wait it out, not exit (it used to exit 2,
    taking the 503 of its start-up queue check for a configuration error)."""
    consumer = chaos.stack.services["consumer"]
    chaos.stack.mns.set_faults(error_rate=1.0)
    chaos.record.note("mns_outages_at_consumer_start")
    kill_consumer(chaos)
    # Until the new process has made its start-up check (and the pollers their first tries) under the outage.
    wait_for(
        lambda: (
            "mns.consumer.started" in consumer.output().split("mns.consumer.stopped")[-1]
            or not consumer.alive()
        ),
        timeout=30,
    )
    chaos.sleep(1.0, 2.0)
    chaos.stack.mns.clear_faults()


def refuse_deletes(chaos: Chaos) -> None:
    """Every BatchDelete answers with per-handle errors for a while: what was published comes back."""
    chaos.stack.mns.set_faults(partial_delete_rate=1.0, drop_response_rate=0.1)
    chaos.record.note("mns_delete_refusal_waves")
    chaos.sleep(1.5, 3.0)
    chaos.stack.mns.clear_faults()
