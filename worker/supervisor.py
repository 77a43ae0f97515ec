"""A small process supervisor: named children, prefixed output, restart with backoff, graceful stop.

``ims-worker run`` uses it to keep the consumer, the shim, the Celery worker and Flower up as one process
tree, the way honcho or systemd would, so that a single command is enough on a laptop or in CI.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import IO, TextIO

import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ChildSpec:
    """One supervised command. ``env`` is the child's whole environment (None: inherit ours)."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    cwd: str | None = None


@dataclass(frozen=True)
class Backoff:
    """Restart delays: ``initial * factor**(n-1)`` for the n-th quick death in a row, at most ``maximum``.

    A child that stayed up for ``reset_after`` seconds is considered healthy again, so one crash a day does
    not accumulate into the maximum delay. No jitter: one supervisor restarts one child, there is no herd.
    """

    initial: float = 1.0
    maximum: float = 30.0
    factor: float = 2.0
    reset_after: float = 30.0

    def delay(self, failures: int) -> float:
        return float(min(self.maximum, self.initial * self.factor ** max(0, failures - 1)))


@dataclass
class _Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0
    restarts: int = 0
    restart_at: float | None = None
    pump: threading.Thread | None = None
    delays: list[float] = field(default_factory=list)


class Supervisor:
    """Start ``children``, keep them running, stop them all on SIGTERM/SIGINT or ``request_stop()``."""

    def __init__(
        self,
        children: Sequence[ChildSpec],
        *,
        grace_seconds: float = 30.0,
        backoff: Backoff | None = None,
        output: TextIO | None = None,
        poll_interval: float = 0.1,
        fatal_codes: frozenset[int] = frozenset(),
        render: Callable[[str, str], str | None] | None = None,
        on_tick: Callable[[], None] | None = None,
        tick_seconds: float = 5.0,
    ) -> None:
        names = [c.name for c in children]
        if len(set(names)) != len(names):
            raise ValueError(f"child names must be unique: {names}")
        self.grace_seconds = grace_seconds
        self.backoff = backoff or Backoff()
        self.poll_interval = poll_interval
        self.fatal_codes = fatal_codes
        # (child name, line) -> the text to print, or None to drop it (worker.runview on a terminal).
        self._render = render
        self.on_tick = on_tick
        self._tick_seconds = tick_seconds
        self.fatal: tuple[str, int] | None = None  # (child, exit code) that stopped everything
        self._output = output or sys.stdout
        self._output_lock = threading.Lock()
        self._width = max((len(n) for n in names), default=0)
        self._children = [_Child(spec=c) for c in children]
        # Plain attributes, not threading.Event: signal handlers must not take locks the main thread may hold.
        self._stop_requested = False
        self._force = False

    # --- public --------------------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Ask ``run()`` to stop every child gracefully. Safe from signal handlers and other threads."""
        if self._stop_requested:
            self._force = True  # a second request (a second Ctrl-C) skips the grace period
        self._stop_requested = True

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    def pids(self) -> dict[str, int | None]:
        return {c.spec.name: (c.process.pid if c.process else None) for c in self._children}

    def restarts(self) -> dict[str, int]:
        return {c.spec.name: c.restarts for c in self._children}

    def restart_delays(self) -> dict[str, list[float]]:
        return {c.spec.name: list(c.delays) for c in self._children}

    def run(self, *, install_signal_handlers: bool = True) -> int:
        """Block until a stop is requested; return 0 if every child exited within the grace period, else 1."""
        previous = self._install_signal_handlers() if install_signal_handlers else {}
        try:
            for child in self._children:
                self._spawn(child)
            next_tick = time.monotonic() + self._tick_seconds
            while not self._stop_requested:
                self._check_children()
                if self.on_tick is not None and time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + self._tick_seconds
                    self.on_tick()
                time.sleep(self.poll_interval)
            code = self._shutdown()
            return 2 if self.fatal is not None else code
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    # --- internals -----------------------------------------------------------------------------------------
    def _install_signal_handlers(self) -> dict[int, signal._HANDLER]:
        def on_signal(signum: int, frame: FrameType | None) -> None:
            self.request_stop()

        previous: dict[int, signal._HANDLER] = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, on_signal)
        return previous

    def _spawn(self, child: _Child) -> None:
        spec = child.spec
        child.restart_at = None
        child.started_at = time.monotonic()
        try:
            # A new session: a terminal's Ctrl-C reaches only us, and we forward one SIGTERM. Celery would
            # take a second SIGINT as "cold shutdown" and drop the tasks in hand. It also lets us kill a
            # child's whole group (Celery's pool processes) if it will not stop.
            process = subprocess.Popen(  # noqa: S603 - argv comes from our own command table, no shell
                list(spec.argv),
                env=dict(spec.env) if spec.env is not None else None,
                cwd=spec.cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            log.warning("child failed to start", child=spec.name, argv=list(spec.argv), error=str(exc))
            child.process = None
            self._schedule_restart(child)
            return
        child.process = process
        log.info("child started", child=spec.name, pid=process.pid)
        assert process.stdout is not None  # Popen(stdout=PIPE) always sets it
        child.pump = threading.Thread(
            target=self._pump, args=(spec.name, process.stdout), name=f"pump-{spec.name}", daemon=True
        )
        child.pump.start()

    def write_line(self, text: str) -> None:
        """Print ``text`` between children's lines (never inside one)."""
        with self._output_lock:
            self._output.write(text + "\n")
            self._output.flush()

    def _pump(self, name: str, stream: IO[bytes]) -> None:
        prefix = f"{name.ljust(self._width)} | "
        with stream:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                text = prefix + line
                if self._render is not None:
                    try:
                        text = self._render(name, line)  # type: ignore[assignment]
                    except Exception:  # noqa: BLE001 - a dead pump would block the child on a full pipe
                        text = prefix + line
                if text is not None:
                    self.write_line(text)

    def _check_children(self) -> None:
        now = time.monotonic()
        for child in self._children:
            if child.process is not None:
                code = child.process.poll()
                if code is None:
                    if child.failures and now - child.started_at >= self.backoff.reset_after:
                        child.failures = 0
                    continue
                uptime = now - child.started_at
                log.warning("child exited", child=child.spec.name, code=code, uptime=round(uptime, 2))
                self._reap_group(child.process)
                child.process = None
                if code in self.fatal_codes:
                    # A configuration error: a restart would fail the same way, while the other children
                    # keep acknowledging events nobody handles. Stop everything and say why.
                    log.error("child failed to start; stopping", child=child.spec.name, code=code)
                    self.fatal = (child.spec.name, code)
                    self._stop_requested = True
                    continue
                if uptime >= self.backoff.reset_after:
                    child.failures = 0
                self._schedule_restart(child)
            elif child.restart_at is not None and now >= child.restart_at:
                child.restarts += 1
                self._spawn(child)

    def _schedule_restart(self, child: _Child) -> None:
        child.failures += 1
        delay = self.backoff.delay(child.failures)
        child.delays.append(delay)
        child.restart_at = time.monotonic() + delay
        log.info("child restart scheduled", child=child.spec.name, delay=delay, failures=child.failures)

    def _reap_group(self, process: subprocess.Popen[bytes]) -> None:
        # Leftovers of a dead child (e.g. Celery pool processes) must not outlive it or they would keep
        # consuming beside the restarted child.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)

    def _shutdown(self) -> int:
        running = [c for c in self._children if c.process is not None and c.process.poll() is None]
        log.info("stopping children", children=[c.spec.name for c in running], grace=self.grace_seconds)
        for child in running:
            assert child.process is not None  # filtered above
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_seconds
        while not self._force and time.monotonic() < deadline:
            if all(c.process is None or c.process.poll() is not None for c in running):
                break
            time.sleep(self.poll_interval / 2)
        clean = True
        for child in self._children:
            process = child.process
            if process is None:
                continue
            if process.poll() is None:
                clean = False
                log.error("child did not stop in time, killing it", child=child.spec.name, pid=process.pid)
            self._reap_group(process)
            process.wait()
            log.info("child stopped", child=child.spec.name, code=process.returncode)
        for child in self._children:
            if child.pump is not None:
                child.pump.join(timeout=2.0)
        log.info("all children stopped", clean=clean)
        return 0 if clean else 1
