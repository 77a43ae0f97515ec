"""``ims-worker run --demo`` on a terminal (a real pty), as a new user sees it: readable and summarized."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import threading
from pathlib import Path

import pytest

from tests.cli import IMS_WORKER, clean_env
from tests.servers import free_port
from worker.devtools.embedded import ENV_FILE_NAME
from worker.devtools.runview import COUNTED, RunView, status_printer

ANSI = re.compile(r"\x1b\[[0-9;]*m")
PREFIX = re.compile(r"^(run|consumer|shim|worker|status)\s*\| ")


def run_on_a_terminal(workdir: Path, *args: str, timeout: float = 100) -> tuple[int, list[str]]:
    controller, terminal = pty.openpty()
    env = clean_env(
        {
            "IMS_WORKER_SHIM_PORT": str(free_port()),
            "IMS_WORKER_CONSUMER_METRICS_PORT": "0",
            "IMS_WORKER_WORKER_CONCURRENCY": "2",
            "IMS_WORKER_CONSUMER_GRACE_SECONDS": "10",
            "TERM": "xterm",
        }
    )
    process = subprocess.Popen(
        [IMS_WORKER, "run", *args],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(controller, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        code = process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(timeout=10)
        os.close(controller)
    text = ANSI.sub("", b"".join(chunks).decode("utf-8", "replace")).replace("\r\n", "\n")
    return code, text.splitlines()


@pytest.mark.integration
def test_demo_on_a_terminal_is_readable_and_summarized(tmp_path: Path) -> None:
    code, lines = run_on_a_terminal(tmp_path, "--demo", "--exit-when-done", "--timeout", "60")
    output = "\n".join(lines)
    assert code == 0, output[-6000:]
    assert "demo: all 43 events handled" in output and "ims via mns: 29" in output
    # One prominent line says this is the embedded set-up, not production.
    warnings = [line for line in lines if "NOT for production" in line]
    assert len(warnings) == 1 and "embedded Redis" in warnings[0] and "MNS emulator" in warnings[0]
    # No JSON, no Celery banner; every log line carries its process name.
    assert not [line for line in lines if re.search(r"\|\s*\{\"", line) or line.startswith("{")]
    assert "color_message" not in output
    assert "[config]" not in output and "[queues]" not in output and "--- ***** -----" not in output
    logged = [line for line in lines if re.search(r"\[(info|warning|error)\s*\]", line)]
    assert logged and all(PREFIX.match(line) for line in logged), [x for x in logged if not PREFIX.match(x)]
    # A few dozen lines: one per event (the built-in handlers' line) and the start and stop of each process.
    assert len(lines) < 120, output
    # The summary, per source, from what the processes reported.
    summary = lines[lines.index(next(x for x in lines if x.startswith("summary after"))) :]
    rows = {row.split()[0]: row.split()[1:] for row in summary[2:8]}
    assert rows["ims"] == ["29", "29", "0", "29", "0", "0"]
    assert rows["rtc"] == ["2", "2", "0", "2", "0", "0"]
    assert rows["total"] == ["43", "43", "0", "43", "0", "0"]
    assert not (tmp_path / ".ims-worker" / ENV_FILE_NAME).exists()
    # No status line counts fewer events in than handled (the consumer reports what it received at most
    # every 10 s; the workers report each event at once).
    for line in (x for x in lines if x.startswith("status")):
        for received, handled in re.findall(r"(\d+) in, (\d+) handled", line):
            assert int(received) >= int(handled), line


def test_the_lines_the_summary_counts_are_still_logged_under_those_names() -> None:
    """If a log line is renamed, the view stops counting it: this lists where each name must appear."""
    sources = {
        "shim.request": "worker/shim/accesslog.py",
        "mns.progress": "worker/mns/progress.py",
        "task.handled": "worker/execution/tasks.py",
        "task.retrying": "worker/execution/tasks.py",
        "task.dead_lettered": "worker/execution/tasks.py",
    }
    root = Path(__file__).resolve().parent.parent
    assert set(sources) == set(COUNTED)
    for name, path in sources.items():
        assert f'"{name}"' in (root / path).read_text(), (name, path)


def test_status_line_and_render_rules() -> None:
    view = RunView(level="INFO", colors=False)
    shim = '{"event": "shim.request", "level": "info", "logger": "worker.shim.access", "status": 200, '
    assert view.render("shim", shim + '"event_ids": ["rtc:1:0", "rtc:1:1"], "duplicates": 1}') is None
    handled = (
        '{"event": "task.handled", "level": "info", "source": "rtc", "timestamp": "2026-01-01T10:00:00Z"}'
    )
    assert view.render("worker", handled) is None
    dead = '{"event": "task.dead_lettered", "level": "error", "source": "rtc", '
    dead += '"timestamp": "2026-01-01T10:00:01Z"}'
    line = view.render("worker", dead)
    assert line is not None and line.startswith("worker   | 10:00:01 [error    ] task.dead_lettered")
    assert view.render("shim", "INFO:     plain text") == "shim     | INFO:     plain text"
    progress = '{"event": "mns.progress", "level": "info", "received": 3, "published": 2, "duplicates": 1}'
    assert view.render("consumer", progress) is None
    assert view.stats.status_line().endswith(
        "ims 3 in, 0 handled (1 duplicates); rtc 2 in, 1 handled (1 duplicates, 1 dead-lettered)"
    )
    # Handled before the consumer's next progress line: received and enqueued are at least what finished.
    lagging = RunView(level="INFO", colors=False)
    for _ in range(2):
        lagging.render("worker", handled.replace('"rtc"', '"ims"'))
    assert lagging.stats.status_line().endswith("ims 2 in, 2 handled")
    assert lagging.stats.shown("ims")["enqueued"] == 2
    printed: list[str] = []
    tick = status_printer(view, printed.append)
    tick()
    tick()  # nothing changed: no second line
    assert len(printed) == 1 and printed[0].startswith("status   | status after")
