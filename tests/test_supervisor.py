"""The process supervisor with small real Python children: output prefixes, restarts with backoff, stop."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from worker.devtools.supervisor import Backoff, ChildSpec, Supervisor

PY = sys.executable
SLEEPER = "import time; print('up', flush=True); time.sleep(60)"
# Exits after a short, visible clean-up on SIGTERM: what a well-behaved consumer does.
GRACEFUL = textwrap.dedent(
    """
    import signal, sys, time
    def stop(*_):
        time.sleep(0.3)
        print('graceful exit', flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    print('up', flush=True)
    while True:
        time.sleep(0.05)
    """
)
STUBBORN = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" + SLEEPER


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout}s")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); read its state to tell.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Running:
    """A supervisor running in a background thread (no signal handlers: the test thread drives it)."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.code = self.supervisor.run(install_signal_handlers=False)

    def stop(self, timeout: float = 15.0) -> int | None:
        self.supervisor.request_stop()
        self.thread.join(timeout)
        return self.code


Starter = Callable[[Supervisor], Running]


@pytest.fixture
def run_supervisor() -> Iterator[Starter]:
    started: list[Running] = []

    def start(supervisor: Supervisor) -> Running:
        running = Running(supervisor)
        running.thread.start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


def test_output_lines_are_prefixed_with_child_name(run_supervisor: Starter) -> None:
    out = io.StringIO()
    sup = Supervisor(
        [
            ChildSpec("a", [PY, "-c", "print('hello from a', flush=True); import time; time.sleep(60)"]),
            ChildSpec(
                "longer", [PY, "-c", "print('hello from longer', flush=True); import time; time.sleep(60)"]
            ),
        ],
        output=out,
    )
    running = run_supervisor(sup)
    wait_until(lambda: "hello from a" in out.getvalue() and "hello from longer" in out.getvalue())
    assert running.stop() == 0
    lines = out.getvalue().splitlines()
    assert "a      | hello from a" in lines
    assert "longer | hello from longer" in lines


def test_killed_child_is_restarted_with_growing_backoff(
    run_supervisor: Starter,
) -> None:
    sup = Supervisor(
        [ChildSpec("victim", [PY, "-c", SLEEPER]), ChildSpec("bystander", [PY, "-c", SLEEPER])],
        backoff=Backoff(initial=0.2, factor=2.0, maximum=5.0, reset_after=30.0),
        output=io.StringIO(),
    )
    running = run_supervisor(sup)
    wait_until(lambda: None not in sup.pids().values())
    bystander = sup.pids()["bystander"]
    for expected_restarts in (1, 2, 3):
        pid = sup.pids()["victim"]
        assert pid is not None
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda pid=pid: sup.pids()["victim"] not in (None, pid))  # type: ignore[misc]
        took = time.monotonic() - killed_at
        assert sup.restarts()["victim"] == expected_restarts
        # The n-th quick death waits 0.2 * 2**(n-1) before the restart.
        assert took >= 0.2 * 2 ** (expected_restarts - 1) - 0.05
    assert sup.restart_delays()["victim"] == [0.2, 0.4, 0.8]
    assert sup.pids()["bystander"] == bystander, "a sibling's death must not restart the others"
    assert running.stop() == 0


def test_backoff_caps_and_resets() -> None:
    backoff = Backoff(initial=1.0, factor=2.0, maximum=5.0)
    assert [backoff.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_child_that_cannot_start_is_retried_not_fatal(
    run_supervisor: Starter,
) -> None:
    sup = Supervisor(
        [ChildSpec("missing", ["/nonexistent/binary"]), ChildSpec("ok", [PY, "-c", SLEEPER])],
        backoff=Backoff(initial=0.05, maximum=0.1),
        output=io.StringIO(),
    )
    running = run_supervisor(sup)
    wait_until(lambda: sup.restarts()["missing"] >= 2)
    assert sup.pids()["ok"] is not None
    assert running.stop() == 0


def test_duplicate_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="unique"):
        Supervisor([ChildSpec("x", ["true"]), ChildSpec("x", ["true"])])


def _supervisor_script(tmp_path: Path, children: dict[str, str], grace: float) -> Path:
    script = tmp_path / "sup.py"
    specs = ", ".join(
        f"ChildSpec({name!r}, [sys.executable, '-c', {code!r}])" for name, code in children.items()
    )
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            from worker.devtools.supervisor import ChildSpec, Supervisor
            sys.exit(Supervisor([{specs}], grace_seconds={grace}).run())
            """
        )
    )
    return script


def _child_pids(output: str, names: list[str]) -> dict[str, int]:
    # The children print their pid first thing; the supervisor prefixes it with their name.
    pids: dict[str, int] = {}
    for line in output.splitlines():
        name, _, rest = line.partition(" | ")
        if name.strip() in names and rest.startswith("pid="):
            pids[name.strip()] = int(rest[4:])
    return pids


def _with_pid(code: str) -> str:
    return "import os; print(f'pid={os.getpid()}', flush=True)\n" + code


def _start_and_read_pids(proc: subprocess.Popen[str], names: list[str], lines: list[str]) -> dict[str, int]:
    assert proc.stdout is not None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        pids = _child_pids("".join(lines), names)
        if len(pids) == len(names):
            return pids
    raise AssertionError("children did not start:\n" + "".join(lines))


def test_sigterm_stops_every_child_within_grace_and_exits_zero(tmp_path: Path) -> None:
    names = ["graceful", "sleeper"]
    script = _supervisor_script(
        tmp_path, {"graceful": _with_pid(GRACEFUL), "sleeper": _with_pid(SLEEPER)}, grace=5.0
    )
    proc = subprocess.Popen([PY, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    pids = _start_and_read_pids(proc, names, lines)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=10)
    took = time.monotonic() - started
    assert proc.returncode == 0, "".join(lines) + out
    assert took < 5.0
    assert "graceful | graceful exit" in out, "the child's own SIGTERM handler must have run"
    assert not any(alive(pid) for pid in pids.values())


def test_child_ignoring_sigterm_is_killed_after_grace_and_exit_is_nonzero(tmp_path: Path) -> None:
    names = ["stubborn", "sleeper"]
    script = _supervisor_script(
        tmp_path, {"stubborn": _with_pid(STUBBORN), "sleeper": _with_pid(SLEEPER)}, grace=1.0
    )
    proc = subprocess.Popen([PY, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    pids = _start_and_read_pids(proc, names, lines)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=10)
    took = time.monotonic() - started
    assert proc.returncode == 1
    assert 1.0 <= took < 4.0
    assert "supervisor.child.killed" in out
    assert not any(alive(pid) for pid in pids.values())
