"""The ledger check every chaos scenario ends with: what was sent against what the handlers did.

Input: the ledger stream written by ``tests.plugins.ledger`` (one entry per handler run), the dead-letter
store and the scenario's expectations (``Sent``). The verdict, per event id that was sent:

* each ledger handler subscribed to its type succeeded exactly once, or the event is in the dead-letter store
  with that handler and the expected reason (poison events), and a handler that was expected to succeed has
  no dead letter;
* every body that cannot be an event (garbage, failed validation; MNS bodies and authenticated webhooks) is in
  the dead-letter store exactly once with its reason (a webhook try whose answer was lost: at most once);
* nothing else: no ledger entry for an id that was never sent, no dead letter that was not expected.

The one double run that at-least-once delivery cannot avoid is a handler that finished and then lost its
process (kill -9) or its Redis (restart) before the done marker was written. Such a second success is
accepted only when ``Faults`` shows exactly that: the first run's process was killed and that run is its
last ledger entry, or the first run falls in a Redis outage. It is counted and reported, never hidden.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from tests.chaos.spec import LEDGER_STREAM, POISON, POISON_PERMANENT, handlers_for
from worker.delivery.deadletter import DeadLetter, DeadLetterStore
from worker.execution.tasks import REASON_EXHAUSTED, REASON_PERMANENT

OUTAGE_MARGIN_SECONDS = 2.0
POISON_REASONS = {"retry": REASON_EXHAUSTED, POISON_PERMANENT: REASON_PERMANENT}


@dataclass(frozen=True)
class Run:
    entry: str
    event_id: str
    type: str
    handler: str
    attempt: int
    task_id: str
    pid: int
    t: float
    ok: bool
    thread: str = ""  # the thread that ran it (the threads pool runs many at once in one process)


def read_ledger(client: redis.Redis) -> list[Run]:
    runs: list[Run] = []
    start = "-"
    while True:
        page = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(LEDGER_STREAM, start, "+", 1000))
        for raw_id, fields in page:
            f = {k.decode(): v.decode() for k, v in fields.items()}
            runs.append(
                Run(
                    raw_id.decode(),
                    f["event_id"],
                    f["type"],
                    f["handler"],
                    int(f["attempt"]),
                    f["task_id"],
                    int(f["pid"]),
                    float(f["t"]),
                    f["ok"] == "1",
                    f.get("thread", ""),
                )
            )
        if len(page) < 1000:
            return runs
        start = "(" + page[-1][0].decode()


@dataclass
class Sent:
    """What a scenario sent and what must come of it (filled by the traffic generators, thread-safe use is
    theirs: they add under their own lock)."""

    # Each group: the ids one sent event may have (one id, or several when its id depends on which
    # 10-minute receipt bucket the accepting request fell in); at least one of each group must be handled.
    groups: set[frozenset[str]] = field(default_factory=set)
    types: dict[str, str] = field(default_factory=dict)  # every allowed id -> its event type
    poison: dict[str, str] = field(default_factory=dict)  # id -> poison kind
    dead_bodies: dict[str, str] = field(default_factory=dict)  # raw body -> expected dead-letter reason
    # Bodies that may be dead-lettered (at most once), not required: a request kept whose answer was lost.
    maybe_dead_bodies: dict[str, str] = field(default_factory=dict)

    def expect_dead_body(self, body: str, reason: str) -> None:
        self.dead_bodies[body] = reason
        self.maybe_dead_bodies.pop(body, None)

    def allow_dead_body(self, body: str, reason: str) -> None:
        if body not in self.dead_bodies:
            self.maybe_dead_bodies[body] = reason

    def expect(self, choices: dict[str, str], poison: str | None = None) -> None:
        """One sent event: the ids it may have (usually exactly one) -> its type."""
        for event_id, event_type in choices.items():
            self.types[event_id] = event_type
            if poison:
                self.poison[event_id] = poison
        self.groups.add(frozenset(choices))

    def allow(self, ids_by_type: dict[str, str], poison: str | None = None) -> None:
        """Ids that may show up (a request that was enqueued but whose answer was lost), not required."""
        for event_id, event_type in ids_by_type.items():
            self.types[event_id] = event_type
            if poison:
                self.poison[event_id] = poison


@dataclass
class Faults:
    """What the scenario did to the processes, to tell the unavoidable re-runs from real double handling."""

    worker_kills: list[tuple[float, int]] = field(default_factory=list)  # (wall clock, pool child pid)
    outages: list[tuple[float, float]] = field(default_factory=list)  # Redis down (wall clock)

    @property
    def killed_worker_pids(self) -> set[int]:
        return {pid for _, pid in self.worker_kills}

    def in_outage(self, t: float) -> bool:
        m = OUTAGE_MARGIN_SECONDS
        return any(start - m <= t <= end + m for start, end in self.outages)

    def crash_after(self, t: float) -> bool:
        """A pool child was killed, or Redis went down, shortly after ``t``."""
        m = OUTAGE_MARGIN_SECONDS
        return self.in_outage(t) or any(t <= when <= t + m for when, _ in self.worker_kills)


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)
    events_expected: int = 0
    events_handled: int = 0  # ids whose every ledger handler succeeded once, no dead letter
    events_dead_lettered: int = 0  # poison ids found in the store as expected
    bodies_dead_lettered: int = 0  # garbage / invalid bodies found in the store as expected
    dead_letters: int = 0
    handler_runs: int = 0
    failed_runs: int = 0
    reruns_after_crash: list[str] = field(default_factory=list)
    lost: list[list[str]] = field(default_factory=list)  # the id choices of each sent event never seen

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": self.problems[:50],
            "problem_count": len(self.problems),
            "events_expected": self.events_expected,
            "events_handled": self.events_handled,
            "events_dead_lettered": self.events_dead_lettered,
            "bodies_dead_lettered": self.bodies_dead_lettered,
            "dead_letters": self.dead_letters,
            "handler_runs": self.handler_runs,
            "failed_runs": self.failed_runs,
            "reruns_after_crash": len(self.reruns_after_crash),
            "reruns_after_crash_examples": self.reruns_after_crash[:10],
        }


def _explained(first: Run, runs_by_pid: dict[tuple[int, str], list[Run]], faults: Faults) -> str | None:
    # The last run of its thread in a killed process: under prefork the child's only thread; under the threads
    # pool each of the process's threads had its own last run when the process died.
    if first.pid in faults.killed_worker_pids and runs_by_pid[(first.pid, first.thread)][-1] == first:
        return f"pid {first.pid} killed right after this run"
    if faults.in_outage(first.t):
        return "Redis outage right after this run"
    return None


def check(runs: list[Run], dead: list[DeadLetter], sent: Sent, faults: Faults) -> Verdict:
    verdict = Verdict(handler_runs=len(runs), failed_runs=sum(1 for r in runs if not r.ok))
    verdict.dead_letters = len(dead)
    by_key: dict[tuple[str, str], list[Run]] = defaultdict(list)
    runs_by_pid: dict[tuple[int, str], list[Run]] = defaultdict(list)
    for run in runs:
        by_key[(run.event_id, run.handler)].append(run)
        runs_by_pid[(run.pid, run.thread)].append(run)
    dead_by_id: dict[str, list[DeadLetter]] = defaultdict(list)
    dead_bodies: Counter[str] = Counter()
    for entry in dead:
        if entry.event_id and entry.event_id in sent.types:
            dead_by_id[entry.event_id].append(entry)
        elif entry.raw_text in sent.dead_bodies or entry.raw_text in sent.maybe_dead_bodies:
            dead_bodies[entry.raw_text] += 1
            wanted = sent.dead_bodies.get(entry.raw_text) or sent.maybe_dead_bodies[entry.raw_text]
            if entry.reason != wanted:
                verdict.problems.append(
                    f"dead letter {entry.id}: reason {entry.reason!r}, expected {wanted!r}"
                )
        else:
            verdict.problems.append(
                f"unexpected dead letter {entry.id}: reason={entry.reason!r} type={entry.event_type} "
                f"id={entry.event_id} error={(entry.error or '')[:200]!r} raw={entry.raw_text[:120]!r}"
            )
    seen_ids = {run.event_id for run in runs} | set(dead_by_id)
    for event_id in sorted({r.event_id for r in runs} - set(sent.types)):
        verdict.problems.append(f"ledger has runs for an id that was never sent: {event_id}")
    for event_id in sorted(seen_ids & set(sent.types)):
        _check_event(event_id, sent, by_key, runs_by_pid, dead_by_id[event_id], faults, verdict)
    for group in sent.groups:
        if not group & seen_ids:
            verdict.lost.append(sorted(group))
            verdict.problems.append(f"lost: no handler ran and no dead letter for {sorted(group)}")
    verdict.events_expected = len(sent.groups)
    for body, reason in sent.dead_bodies.items():
        count = dead_bodies.get(body, 0)
        if count == 0:
            verdict.problems.append(f"lost: body never dead-lettered ({reason}): {body[:120]!r}")
        elif count > 1:
            verdict.problems.append(f"body dead-lettered {count} times: {body[:120]!r}")
        else:
            verdict.bodies_dead_lettered += 1
    for body in sent.maybe_dead_bodies:
        if dead_bodies.get(body, 0) > 1:
            verdict.problems.append(f"body dead-lettered {dead_bodies[body]} times: {body[:120]!r}")
    return verdict


def _check_event(
    event_id: str,
    sent: Sent,
    by_key: dict[tuple[str, str], list[Run]],
    runs_by_pid: dict[tuple[int, str], list[Run]],
    dead: list[DeadLetter],
    faults: Faults,
    verdict: Verdict,
) -> None:
    event_type = sent.types[event_id]
    poison = sent.poison.get(event_id)
    handled = True
    for name in handlers_for(event_type):
        runs = by_key.get((event_id, name), [])
        if any(run.type != event_type for run in runs):
            verdict.problems.append(f"{event_id}: {name} got type {runs[0].type}, sent {event_type}")
        successes = [run for run in runs if run.ok]
        if poison and name == POISON:
            handled = False
            reason = POISON_REASONS[poison]
            matching = [e for e in dead if name in e.handlers and e.reason == reason]
            if successes or not matching:
                verdict.problems.append(
                    f"{event_id}: poison ({poison}) expected a dead letter {reason!r} "
                    f"for {name}; successes={len(successes)} dead={len(dead)}"
                )
            continue
        if len(successes) == 1:
            continue
        if not successes:
            handled = False
            verdict.problems.append(
                f"{event_id} ({event_type}): {name} never succeeded "
                f"(runs={len(runs)}, dead letters={len(dead)})"
            )
            continue
        for first in successes[:-1]:
            why = _explained(first, runs_by_pid, faults)
            if why is None:
                verdict.problems.append(
                    f"{event_id} ({event_type}): {name} succeeded {len(successes)} times "
                    f"(pids {[r.pid for r in successes]}, tasks "
                    f"{sorted({r.task_id for r in successes})})"
                )
                break
            verdict.reruns_after_crash.append(f"{event_id} {name}: {why}")
    unexpected = [e for e in dead if not (poison and POISON in e.handlers)]
    if unexpected:
        verdict.problems.append(
            f"{event_id}: unexpected dead letters {[(e.reason, e.handlers) for e in unexpected]}"
        )
    expected_dead = [e for e in dead if e not in unexpected]
    for entry in expected_dead[:-1]:
        # Dead-lettered, then the task was redelivered before its ack: possible only across a crash.
        if not faults.crash_after(entry.dead_lettered_at.timestamp()):
            verdict.problems.append(f"{event_id}: dead-lettered {len(expected_dead)} times")
            break
        verdict.reruns_after_crash.append(f"{event_id}: dead-lettered again after a crash")
    if poison and not handled and not unexpected:
        verdict.events_dead_lettered += 1
    elif handled and not dead:
        verdict.events_handled += 1


def read_all(redis_url: str) -> tuple[list[Run], list[DeadLetter]]:
    client = redis.Redis.from_url(redis_url)
    store = DeadLetterStore(client)
    try:
        return read_ledger(client), store.list()
    finally:
        client.close()
