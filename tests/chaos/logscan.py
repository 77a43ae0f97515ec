"""Reading every log line a scenario produced: secrets that must never be there, and what the lines count.

Lines are JSON (``IMS_WORKER_LOG_FORMAT=json``); under ``ims-worker run`` each carries the child's name
(``{"process": "consumer", ...}``), and a child's line that was not JSON arrives wrapped as
``{"event": "run.output", "line": ...}``: it is unwrapped here and judged as the child printed it. Every
line of our processes must be JSON (uvicorn's, Celery's and Flower's own lines go through the same
pipeline): anything else is a finding, except Redis's own log file, the MNS emulator's one ready line
(``EMULATOR_READY``) and the one known block Python prints outside logging (see ``_terminated_pool_child``).
Every line must also be free of credentials: a configured secret or signature value anywhere, or any
credential-named URL parameter, form field or JSON member (``sign``, ``token``, ``txSecret``, ``Signature``,
``OSSAccessKeyId``...) whose value is not ``[REDACTED]`` (``worker.redact`` decides which names carry
credentials).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.redact import redact_text

# Not our process: Redis's own log. Searched for configured secrets only.
FOREIGN_LOGS = ("redis",)
# ``ims-worker emulator mns`` prints exactly this protocol line on stdout once it listens (scripts parse the
# endpoint from it; worker/cli/emulator.py); its logs are JSON on stderr like every other process's, and are
# scanned as such. The line names the access key *id* the emulator's clients must be given (an identifier that
# ``redact_text`` treats as a credential by its name); the secret is never in it, and the configured-secret
# search still covers the whole file.
EMULATOR_READY = re.compile(r"mns-emulator ready endpoint=http://[\w.:\[\]-]+ access_key_id=[\w-]+")


@dataclass
class LogStats:
    lines: int = 0
    events: Counter[str] = field(default_factory=Counter)
    sums: Counter[str] = field(default_factory=Counter)
    levels: Counter[str] = field(default_factory=Counter)
    not_json: int = 0
    not_json_samples: list[str] = field(default_factory=list)
    # Tracebacks printed outside the logging pipeline: an exception nobody caught (a thread died, a crash).
    uncaught: list[str] = field(default_factory=list)
    child_exits: list[tuple[str, int]] = field(default_factory=list)  # ``ims-worker run``'s children
    critical: list[str] = field(default_factory=list)  # e.g. Celery's "Unrecoverable error: ..."

    def as_dict(self) -> dict[str, Any]:
        wanted = (
            "mns.progress",
            "mns.poller.backoff",
            "mns.delete.failed",
            "mns.message.dead_lettered",
            "mns.message.already_dead_lettered",
            "shim.request",
            "shim.broker_unavailable",
            "shim.internal_error",
            "task.handled",
            "task.retrying",
            "task.dead_lettered",
            "task.handler_failed",
            "mns.consumer.fatal",
        )
        return {
            "lines": self.lines,
            "not_json": self.not_json,
            "not_json_samples": self.not_json_samples[:10],
            "uncaught_tracebacks": self.uncaught[:20],
            "child_exits": self.child_exits,
            "critical": self.critical[:20],
            "levels": dict(self.levels),
            "events": {name: self.events[name] for name in wanted if self.events[name]},
            "sums": dict(self.sums),
        }


def _json(line: str) -> dict[str, Any] | None:
    start = line.find("{")
    if start < 0:
        return None
    try:
        value = json.loads(line[start:])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _unwrapped(line: str) -> str:
    """What a child of ``ims-worker run`` printed, when ``run`` wrapped a non-JSON line into a JSON one."""
    if '"run.output"' not in line:
        return line
    record = _json(line)
    if record is None or record.get("event") != "run.output":
        return line
    return str(record.get("line", ""))


def _count(stats: LogStats, record: dict[str, Any]) -> None:
    name = str(record.get("event", ""))
    stats.events[name if len(name) < 60 else name[:60]] += 1
    stats.levels[str(record.get("level", "?"))] += 1
    if record.get("level") == "critical":
        stats.critical.append(name[:300])
    if name == "mns.progress":
        for key in ("received", "published", "duplicates", "dead_lettered", "deleted"):
            stats.sums[f"mns_{key}"] += int(record.get(key) or 0)
    elif name == "shim.request":
        stats.sums["shim_duplicates"] += int(record.get("duplicates") or 0)
        stats.sums[f"shim_status_{record.get('status')}"] += 1
    elif name == "supervisor.child.exited":
        stats.child_exits.append((str(record.get("child")), int(record.get("code") or 0)))
    elif name == "task.handled":
        skipped = int(record.get("handlers_skipped") or 0)
        if skipped:
            stats.sums["tasks_with_skipped_handlers"] += 1
            stats.sums["handlers_skipped"] += skipped


def scan(files: Iterable[Path], secrets: dict[str, str]) -> tuple[LogStats, list[str]]:
    """Statistics over all lines, and the findings: one per (file, secret) whose value appears in a line,
    one per line carrying an unredacted credential, one per non-JSON line of our processes.

    ``secrets`` maps a label (never printed with the value) to the value."""
    stats = LogStats()
    findings: list[str] = []
    for path in files:
        text = path.read_text(errors="replace")
        for label, value in secrets.items():
            if value and value in text:
                line_no = text[: text.index(value)].count("\n") + 1
                findings.append(f"{label} appears in {path.name} line {line_no}")
        ours = not path.name.startswith(FOREIGN_LOGS)
        emulator = path.name.startswith("mns-emulator")
        lines = [_unwrapped(line) for line in text.splitlines()]
        exempt_until = -1
        for index, line in enumerate(lines):
            stats.lines += 1
            if emulator and EMULATOR_READY.fullmatch(line):
                continue
            if ours and redact_text(line) != line:
                findings.append(f"an unredacted credential parameter in {path.name} line {index + 1}")
            record = _json(line)
            if record is None:
                stats.not_json += 1
                known = index <= exempt_until
                if "Traceback (most recent call last)" in line:
                    if _terminated_pool_child(lines, index):
                        exempt_until = _block_end(lines, index)
                        known = True
                    else:
                        last = next((x for x in lines[index + 1 :] if x and not x.startswith(" ")), "?")
                        stats.uncaught.append(f"{path.name} line {index + 1}: {last.strip()[:200]}")
                elif index + 1 < len(lines) and "Exception ignored in" in line:
                    known = _terminated_pool_child(lines, index + 1)
                if ours and not known and line.strip():
                    stats.not_json_samples.append(f"{path.name} line {index + 1}: {line[:200]}")
                    findings.append(f"a line that is not JSON in {path.name} line {index + 1}: {line[:120]}")
                continue
            _count(stats, record)
    return stats, findings


def _block_end(lines: list[str], index: int) -> int:
    """The index of a traceback's last line (the exception line after the indented frames)."""
    end = index + 1
    while end < len(lines) and lines[end].startswith(" "):
        end += 1
    return end


def _terminated_pool_child(lines: list[str], index: int) -> bool:
    """Celery terminates (SIGTERM) a pool child whose acks-late task cannot be acked after a broker connection
    loss; billiard exits from the signal handler, and if that lands in a redis-py destructor Python prints
    "Exception ignored in ... __del__" with billiard's exit frames. Deliberate, harmless, and third-party."""
    before = lines[index - 1] if index else ""
    following = "\n".join(lines[index + 1 : index + 12])
    return (
        "Exception ignored in" in before
        and "billiard/common.py" in following
        and "_shutdown_cleanup" in following
    )
