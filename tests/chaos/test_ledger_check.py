"""The ledger check itself must be able to fail: every kind of broken promise, on hand-made ledgers."""

from __future__ import annotations

import pytest

from tests.chaos.ledger import Faults, Run, Sent, check
from tests.chaos.spec import POISON, RECORD_ALL, RECORD_IMS
from worker.delivery.deadletter import DeadLetter
from worker.execution.tasks import REASON_EXHAUSTED

pytestmark = pytest.mark.chaos

IMS = "ims.FileUploadComplete"
T0 = 1_700_000_000.0


def run(event_id: str, handler: str, *, ok: bool = True, pid: int = 10, t: float = T0, n: int = 0) -> Run:
    return Run(f"{int(t * 1000)}-{n}", event_id, IMS, handler, 1, "task-1", pid, t, ok)


def handled(event_id: str, pid: int = 10, t: float = T0) -> list[Run]:
    return [run(event_id, name, pid=pid, t=t) for name in (POISON, RECORD_ALL, RECORD_IMS)]


def dead(event_id: str | None, reason: str, handlers: tuple[str, ...] = (), raw: bytes = b"{}") -> DeadLetter:
    return DeadLetter(
        f"{int(T0 * 1000)}-0",
        raw,
        "ims",
        reason,
        IMS if event_id else None,
        event_id,
        None,
        "boom",
        3,
        handlers,
        None,
        None,
    )


def sent(*ids: str) -> Sent:
    expected = Sent()
    for event_id in ids:
        expected.expect({event_id: IMS})
    return expected


def test_every_event_handled_once_passes() -> None:
    verdict = check([*handled("a"), *handled("b")], [], sent("a", "b"), Faults())
    assert verdict.ok, verdict.problems
    assert verdict.events_handled == 2


def test_a_lost_event_fails() -> None:
    verdict = check(handled("a"), [], sent("a", "b"), Faults())
    assert verdict.problems == ["lost: no handler ran and no dead letter for ['b']"]


def test_a_handler_that_never_succeeded_fails() -> None:
    runs = [r for r in handled("a") if r.handler != RECORD_IMS]
    verdict = check(runs, [], sent("a"), Faults())
    assert any("record_ims never succeeded" in p for p in verdict.problems)


def test_a_double_success_fails_unless_a_crash_explains_it() -> None:
    runs = [*handled("a", pid=10), run("a", RECORD_ALL, pid=11, t=T0 + 1, n=1)]
    assert any("succeeded 2 times" in p for p in check(runs, [], sent("a"), Faults()).problems)
    # pid 10 was killed, but its last entry is not the first success: still double handling.
    killed = Faults(worker_kills=[(T0 + 0.5, 10)])
    assert not check(runs, [], sent("a"), killed).ok
    # The first success is the killed process's last entry: the re-run at-least-once cannot avoid.
    runs = [run("a", POISON), run("a", RECORD_IMS), run("a", RECORD_ALL), run("a", RECORD_ALL, pid=11, n=1)]
    verdict = check(runs, [], sent("a"), killed)
    assert verdict.ok, verdict.problems
    assert len(verdict.reruns_after_crash) == 1
    outage = Faults(outages=[(T0 + 0.5, T0 + 2)])
    assert check([*handled("a"), run("a", RECORD_ALL, pid=11, n=1)], [], sent("a"), outage).ok


def test_in_the_threads_pool_a_rerun_is_explained_by_its_threads_last_run() -> None:
    def threaded(event_id: str, handler: str, thread: str, pid: int = 10, n: int = 0) -> Run:
        return Run(f"{int(T0 * 1000)}-{n}", event_id, IMS, handler, 1, "task-1", pid, T0, True, thread)

    killed = Faults(worker_kills=[(T0 + 0.5, 10)])
    # Thread T1 of the killed process ran record_all of "a" last; T2 went on with "b" in the same process.
    first = [threaded("a", h, "T1", n=i) for i, h in enumerate((POISON, RECORD_IMS, RECORD_ALL))]
    other = [threaded("b", h, "T2", n=10 + i) for i, h in enumerate((POISON, RECORD_IMS, RECORD_ALL))]
    rerun = threaded("a", RECORD_ALL, "T9", pid=11, n=20)
    verdict = check([*first, *other, rerun], [], sent("a", "b"), killed)
    assert verdict.ok, verdict.problems
    assert len(verdict.reruns_after_crash) == 1
    # The same thread ran something after it: its success was recorded before the kill, not cut by it.
    later = threaded("b", RECORD_ALL, "T1", n=30)
    assert not check([*first, *other[:2], later, rerun], [], sent("a", "b"), killed).ok


def test_runs_for_an_id_never_sent_fail() -> None:
    verdict = check([*handled("a"), *handled("x")], [], sent("a"), Faults())
    assert verdict.problems == ["ledger has runs for an id that was never sent: x"]


def test_poison_must_be_dead_lettered_with_its_reason() -> None:
    expected = Sent()
    expected.expect({"p": IMS}, poison="retry")
    runs = [run("p", RECORD_ALL), run("p", RECORD_IMS), run("p", POISON, ok=False)]
    assert not check(runs, [], expected, Faults()).ok
    good = dead("p", REASON_EXHAUSTED, (POISON,))
    verdict = check(runs, [good], expected, Faults())
    assert verdict.ok, verdict.problems
    assert verdict.events_dead_lettered == 1
    assert not check(runs, [dead("p", "permanent failure", (POISON,))], expected, Faults()).ok
    assert not check(runs, [good, good], expected, Faults()).ok  # twice, with no crash to explain it


def test_dead_letters_nobody_expected_fail() -> None:
    verdict = check(handled("a"), [dead("a", REASON_EXHAUSTED, (RECORD_ALL,))], sent("a"), Faults())
    assert any("unexpected dead letters" in p for p in verdict.problems)
    stray = dead(None, "invalid-payload", raw=b"who sent this")
    assert any("unexpected dead letter" in p for p in check([], [stray], Sent(), Faults()).problems)


def test_bad_bodies_must_be_dead_lettered_once_with_their_reason() -> None:
    expected = Sent(dead_bodies={"garbage": "invalid-payload"})
    assert not check([], [], expected, Faults()).ok
    entry = dead(None, "invalid-payload", raw=b"garbage")
    assert check([], [entry], expected, Faults()).ok
    assert not check([], [entry, entry], expected, Faults()).ok
    assert not check([], [dead(None, "dequeue-limit", raw=b"garbage")], expected, Faults()).ok


def test_a_body_whose_answer_was_lost_may_be_dead_lettered_at_most_once() -> None:
    expected = Sent()
    expected.allow_dead_body("retried", "invalid_request")
    assert check([], [], expected, Faults()).ok
    entry = dead(None, "invalid_request", raw=b"retried")
    assert check([], [entry], expected, Faults()).ok
    assert not check([], [entry, entry], expected, Faults()).ok
    assert not check([], [dead(None, "invalid-payload", raw=b"retried")], expected, Faults()).ok
