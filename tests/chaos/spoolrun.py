"""One spool scenario: two shim replicas, a provider simulator with the real retry policies, one fault, then
the ledger check. The summary holds the RELIABILITY.md row: events sent, provider gave up, handled, handled
twice, longest spool wait."""

from __future__ import annotations

import json
import random
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.chaos.budget import results_dir
from tests.chaos.ledger import Faults, Sent, check
from tests.chaos.providers import ProviderSimulator
from tests.chaos.replicas import PUBLIC_URL, REPLICAS, ReplicaStack
from tests.chaos.stack import Keys

RATE = 20.0  # IMS callbacks per second, as in the run
LOAD_SECONDS = 30.0  # one fault each: 600 callbacks; the run (1,200, three faults) sends for 60 s
# A task that met the outage comes back after its delivery lease (60 s at the defaults) and the outbox sweep:
# RELIABILITY.md measured redelivery within 90 s.
DRAIN_SECONDS = 150.0

Fault = Callable[[ReplicaStack, Faults, Callable[[str], None]], None]


@dataclass
class SpoolScenario:
    name: str
    description: str
    fault: Fault
    env: dict[str, str] = field(default_factory=dict)
    give_ups_expected: bool = False  # the size bound: 503s past it are the provider's to give up on
    prepare: Callable[[ReplicaStack], None] | None = None  # before start (the full-filesystem mount)
    cleanup: Callable[[ReplicaStack], None] | None = None
    stack: type[ReplicaStack] = ReplicaStack
    load_seconds: float = LOAD_SECONDS


def longest_spool_wait_ms(stack: ReplicaStack) -> int:
    longest = 0
    for path in stack.log_files():
        for line in path.read_text(errors="replace").splitlines():
            if '"shim.spool.drained"' in line:
                try:
                    longest = max(longest, int(json.loads(line)["waited_ms_max"]))
                except (ValueError, KeyError):
                    continue
    return longest


def log_problems(stack: ReplicaStack) -> list[str]:
    """Anything but a clean answer in the shims' logs (Celery's own connection-loss warnings carry a
    traceback: the worker's log is not scanned for one)."""
    found = []
    for path in stack.log_files():
        if not path.name.startswith("shim-"):
            continue
        text = path.read_text(errors="replace")
        for needle in ("Traceback", "shim.internal_error", '"status":500', "shim.spool.drain_error"):
            if needle in text:
                found.append(f"{path.name}: {needle}")
    return found


def run_spool_scenario(scenario: SpoolScenario, workdir: Path, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    keys = Keys.generate(rng)
    stack = scenario.stack(workdir, keys, extra_env=scenario.env)
    sent, lock = Sent(), threading.Lock()
    faults = Faults()
    timeline: list[tuple[float, str]] = []
    errors: list[str] = []
    problems: list[str] = []

    def note(what: str) -> None:
        timeline.append((round(time.time(), 3), what))

    def strike() -> None:
        try:
            scenario.fault(stack, faults, note)
        except BaseException as exc:  # reported below
            errors.append(f"fault: {type(exc).__name__}: {exc}")

    started = time.monotonic()
    if scenario.prepare is not None:
        scenario.prepare(stack)
    simulator = ProviderSimulator(
        stack.replica_urls,
        keys.by_source,
        PUBLIC_URL,
        sent=sent,
        lock=lock,
        rate=RATE,
        seconds=scenario.load_seconds,
        seed=rng.getrandbits(64),
    )
    try:
        stack.start()
        ready = time.monotonic()
        fault = threading.Thread(target=strike, name="fault", daemon=True)
        simulator.start()
        fault.start()
        simulator.join()
        fault.join(timeout=120)
        loaded = time.monotonic()
        for name in REPLICAS:  # whatever the fault killed is back
            if not stack.services[name].alive():
                errors.append(f"{name} is not running at the end")
        drained = stack.wait_idle(DRAIN_SECONDS)
        if not drained:
            problems.append(f"not drained within {DRAIN_SECONDS}s (spool {stack.spooled()} requests left)")
        runs, dead = stack.results()
        verdict = check(runs, dead, sent, faults)
        problems += [f"{name} exited on its own" for name in stack.crashed()]
    finally:
        stack.stop()
        if scenario.cleanup is not None:
            scenario.cleanup(stack)
    ended = time.monotonic()
    stats = simulator.stats
    problems += errors + stats.problems + verdict.problems + log_problems(stack)
    if simulator.error is not None:
        problems.append(f"simulator: {simulator.error!r}")
    if stats.given_up and not scenario.give_ups_expected:
        problems += [f"the provider gave up: {line}" for line in stats.given_up[:20]]
    summary = {
        "scenario": scenario.name,
        "description": scenario.description,
        "seed": seed,
        "row": {
            "callbacks_sent": len(simulator.deliveries),
            "events_sent": verdict.events_expected,
            "provider_gave_up": len(stats.given_up),
            "handled": verdict.events_handled,
            "handled_twice": len(verdict.reruns_after_crash),
            "longest_spool_wait_ms": longest_spool_wait_ms(stack),
        },
        "answers": dict(stats.counts),
        "timeline": timeline,
        "seconds": {
            "start": round(ready - started, 1),
            "load": round(loaded - ready, 1),
            "total": round(ended - started, 1),
        },
        "result": "pass" if not problems else "fail",
        "problems": problems[:50],
        "workdir": str(workdir),
    }
    path = results_dir() / f"spool-{scenario.name}.json"
    path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(json.dumps({k: summary[k] for k in ("scenario", "row", "answers", "seconds", "result")}, indent=1))
    if problems:  # keep the logs next to the summary: pytest's temporary directories rotate
        shutil.copytree(stack.logdir, results_dir() / f"spool-{scenario.name}-logs", dirs_exist_ok=True)
        print(stack.tail(30))
    return summary
