"""``ims-worker run`` on a terminal: one readable console format for every process, counts, a summary.

The children log JSON lines (their output is a pipe); the supervisor hands each line to ``RunView.render``,
which renders it with the same console renderer as the supervisor's own lines, prefixed with the process
name, and counts the pipeline's outcomes per source from the lines that report them. Per-event routine lines
(a task received or succeeded, each webhook request, each handled event) are counted rather than printed, so
43 events make a few dozen lines; warnings and errors are always printed. ``status_line`` and ``summary``
report the counts: what each input received and enqueued (or found duplicate), what the workers handled,
retried and dead-lettered.

The names of the lines counted are listed in ``COUNTED`` (the test of the readable run fails if one changes).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TextIO

import structlog

FIELDS = ("received", "enqueued", "duplicates", "handled", "retried", "dead_lettered")
HEADERS = ("received", "enqueued", "duplicates", "handled", "retried", "dead-lettered")
FINISHED = "finished"  # handled or dead-lettered by a worker: a lower bound of what the inputs received

# Routine INFO lines that are counted (or are noise on a terminal) instead of printed.
QUIET_LOGGERS = frozenset(
    {"celery.app.trace", "celery.worker.strategy", "celery.worker.consumer.mingle", "worker.shim.access"}
)
QUIET_EVENTS = frozenset(
    {
        *("task.handled", "mns.progress", "task.retrying"),  # counted
        *("mns.emulator.started", "mns.emulator.stopped", "mns.poller.stopped", "mns.consumer.signal"),
        "supervisor.child.stopped",  # "supervisor.stopped" says it once
    }
)
COUNTED = ("shim.request", "mns.progress", "task.handled", "task.retrying", "task.dead_lettered")
_LEVELS = {name: logging.getLevelName(name.upper()) for name in ("debug", "info", "warning", "error")}


class ViewStream:
    """A text stream for the supervisor's own (JSON) log lines: each goes through the view like a child's."""

    def __init__(self, view: RunView, name: str, stream: TextIO) -> None:
        self._view = view
        self._name = name
        self._stream = stream
        self._partial = ""

    def write(self, text: str) -> int:
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            rendered = self._view.render(self._name, line)
            if rendered is not None:
                self._stream.write(rendered + "\n")
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return False  # what is written here is JSON, rendered by the view


def _source_of(event_id: object) -> str:
    text = str(event_id)
    return text.split(":", 1)[0] if ":" in text else "unknown"


class RunStats:
    """Outcome counts per source, fed from the children's log records."""

    def __init__(self) -> None:
        self.by_source: dict[str, Counter[str]] = {}
        self.started = time.monotonic()
        self.changes = 0

    def add(self, source: str, **counts: int) -> None:
        counter = self.by_source.setdefault(source, Counter())
        for name, value in counts.items():
            if value:
                counter[name] += value
                self.changes += 1

    def feed(self, record: dict[str, Any]) -> None:
        event = record.get("event")
        if event == "shim.request" and record.get("status") == 200:
            ids = record.get("event_ids") or []
            duplicates = int(record.get("duplicates") or 0)
            source = _source_of(ids[0]) if ids else "unknown"
            self.add(source, received=len(ids), enqueued=len(ids) - duplicates, duplicates=duplicates)
        elif event == "mns.progress":
            self.add(
                "ims",
                received=int(record.get("received") or 0),
                enqueued=int(record.get("published") or 0),
                duplicates=int(record.get("duplicates") or 0),
                dead_lettered=int(record.get("dead_lettered") or 0),
            )
        elif event in ("task.handled", "task.retrying", "task.dead_lettered"):
            field = {"task.handled": "handled", "task.retrying": "retried"}.get(event, "dead_lettered")
            source = str(record.get("source") or "unknown")
            self.add(source, **{field: 1})
            if field != "retried":  # reached a worker: received and enqueued, whatever the inputs said yet
                self.add(source, **{FINISHED: 1})

    def shown(self, source: str) -> Counter[str]:
        """The counts of ``source`` as reported, but never fewer received or enqueued than the workers
        finished: the consumer reports what it received at most every 10 s (``mns.progress``), the workers
        report each event at once, so "ims 0 in, 29 handled" would be a lag, not a fact."""
        counts = Counter(self.by_source.get(source, Counter()))
        finished = counts.pop(FINISHED, 0)
        for field in ("received", "enqueued"):
            counts[field] = max(counts[field], finished)
        return counts

    def totals(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for source in self.by_source:
            total.update(self.shown(source))
        return total

    def status_line(self) -> str:
        elapsed = time.monotonic() - self.started
        parts = []
        for source in sorted(self.by_source):
            c = self.shown(source)
            text = f"{source} {c['received']} in, {c['handled']} handled"
            extra = [f"{c[f]} {h}" for f, h in zip(FIELDS, HEADERS, strict=True) if f in
                     ("duplicates", "retried", "dead_lettered") and c[f]]  # fmt: skip
            parts.append(text + (f" ({', '.join(extra)})" if extra else ""))
        return f"status after {elapsed:.0f}s: " + ("; ".join(parts) if parts else "no events yet")

    def summary(self) -> str:
        elapsed = time.monotonic() - self.started
        rows: list[tuple[str, ...]] = [("source", *HEADERS)]
        for source in sorted(self.by_source):
            rows.append((source, *(str(self.shown(source)[f]) for f in FIELDS)))
        total = self.totals()
        rows.append(("total", *(str(total[f]) for f in FIELDS)))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [f"summary after {elapsed:.0f}s (inputs: received/enqueued/duplicates; workers: the rest):"]
        for row in rows:
            cells = [row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))]
            lines.append("  " + "  ".join(cells))
        return "\n".join(lines)


class RunView:
    """Renders children's lines for a terminal and counts outcomes. ``render`` returns None to drop a line."""

    def __init__(self, *, level: str = "INFO", colors: bool = True, width: int = 8) -> None:
        self.stats = RunStats()
        self.width = width
        level_number = logging.getLevelName(level.upper())
        self.level = level_number if isinstance(level_number, int) else logging.INFO
        self._renderer = structlog.dev.ConsoleRenderer(colors=colors)

    def prefix(self, name: str) -> str:
        return f"{name.ljust(self.width)} | "

    def render(self, name: str, line: str) -> str | None:
        record = self._parse(line)
        if record is None:
            return self.prefix(name) + line
        self.stats.feed(record)
        level = _LEVELS.get(str(record.get("level", "info")), logging.INFO)
        if level < self.level:
            return None
        if level <= logging.INFO and self.level >= logging.INFO and self._routine(record):
            return None
        return self.prefix(name) + self._console(record)

    @staticmethod
    def _routine(record: dict[str, Any]) -> bool:
        return record.get("logger") in QUIET_LOGGERS or record.get("event") in QUIET_EVENTS

    @staticmethod
    def _parse(line: str) -> dict[str, Any] | None:
        if not line.startswith("{"):
            return None
        try:
            record = json.loads(line)
        except ValueError:
            return None
        return record if isinstance(record, dict) and "event" in record else None

    def _console(self, record: dict[str, Any]) -> str:
        fields = dict(record)
        method = str(record.get("level", "info"))
        # Terse for a terminal (the JSON logs keep everything): time of day, no task ids, no first attempts.
        fields["timestamp"] = str(fields.get("timestamp", ""))[11:19]
        for noisy in ("task_id", "data", "logger", "color_message", "process_name"):
            fields.pop(noisy, None)
        if fields.get("attempt") == 1:
            del fields["attempt"]
        rendered = str(self._renderer(None, method, fields))
        return rendered.replace("\n", "\n" + " " * (self.width + 3))


def json_line(name: str, line: str) -> str:
    """Without a terminal: each child's line as one JSON object with its process name, so the whole output
    is JSON lines (``jq``, a log shipper) instead of ``shim     | {...}``. A line that is not a JSON object
    (a library printing to stdout, a crash's traceback) becomes ``{"event": "run.output", "line": ...}``."""
    if line.startswith("{"):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            return json.dumps({"process": name, **record}, separators=(",", ":"), ensure_ascii=False)
    wrapped = {"process": name, "event": "run.output", "level": "info", "line": line}
    return json.dumps(wrapped, separators=(",", ":"), ensure_ascii=False)


def status_printer(view: RunView, write: Callable[[str], None]) -> Callable[[], None]:
    """Call every few seconds: writes a status line when the counts changed since the last one."""
    seen = -1

    def tick() -> None:
        nonlocal seen
        if view.stats.changes != seen:
            seen = view.stats.changes
            write(view.prefix("status") + view.stats.status_line())

    return tick
