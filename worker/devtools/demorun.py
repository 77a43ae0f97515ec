"""``ims-worker run``'s own messages, and the demo run beside the supervisor.

On a terminal ``run`` prints plain sentences (the warning about embedded services, where the demo listens,
the demo's report); without one its output is JSON lines only, so the same facts are log records there
(``run.embedded``, ``run.listening``, ``demo.report``...) with the sentence in ``message``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from typing import Any

import structlog

from worker.devtools.demo import Demo, DemoFailed
from worker.devtools.supervisor import Supervisor

log = structlog.get_logger(__name__)


class Announcer:
    """Say one thing the user must see: a sentence on a terminal, a log record in JSON-lines output."""

    def __init__(self, *, json_lines: bool) -> None:
        self.json_lines = json_lines

    def say(
        self,
        event: str,
        text: str,
        *,
        level: str = "info",
        stdout: bool = False,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        if self.json_lines:
            getattr(log, level)(event, message=text, **(fields or {}))
        else:
            print(text, file=sys.stdout if stdout else sys.stderr, flush=True)


class DemoRunner:
    """Runs the demo beside the supervisor; with ``exit_when_done`` it stops the supervisor at the end."""

    def __init__(
        self, demo: Demo, supervisor: Supervisor, *, exit_when_done: bool, announcer: Announcer
    ) -> None:
        self.demo = demo
        self.supervisor = supervisor
        self.exit_when_done = exit_when_done
        self.announcer = announcer
        self.code = 0
        self.thread = threading.Thread(target=self._run, name="demo", daemon=True)

    def _fail(self, reason: str) -> None:
        log.warning("demo.failed", error=reason)
        if not self.announcer.json_lines:
            print(f"demo failed: {reason}", file=sys.stderr, flush=True)
        self.code = 1

    def _report(self, missing: dict[str, str]) -> None:
        expected = len(self.demo.expected)
        self.announcer.say(
            "demo.report",
            self.demo.report(missing),
            level="warning" if missing else "info",
            stdout=True,
            fields={"handled": expected - len(missing), "expected": expected, "missing": missing},
        )
        if not missing:
            counts = self.demo.counts()
            text = (
                self.demo.summary()
                if not self.announcer.json_lines
                else "demo: handled " + ", ".join(f"{count} {key}" for key, count in counts.items())
            )
            self.announcer.say("demo.handled_by_source", text, stdout=True, fields={"counts": counts})

    def _run(self) -> None:
        should_stop = lambda: self.supervisor.stop_requested  # noqa: E731 - a one-line predicate
        try:
            self.demo.seed(should_stop)
            log.info("demo.seeded", events=len(self.demo.expected))
            if not self.exit_when_done:
                return
            missing = self.demo.wait_until_handled(should_stop)
            self._report(missing)
            if missing:
                self.code = 1
        except DemoFailed as exc:
            self._fail(str(exc))
        except Exception as exc:  # noqa: BLE001 - whatever breaks, the demo must not leave run hanging
            self._fail(f"{type(exc).__name__}: {exc}")
        finally:
            self.demo.close()
            if self.exit_when_done:
                self.supervisor.request_stop()
