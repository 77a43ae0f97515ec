"""The chaos suite's log check (tests/chaos/logscan.py) finds what it must: non-JSON lines of our processes,
credentials left in URLs, configured secrets; and lets through what is known and harmless."""

from __future__ import annotations

import json
from pathlib import Path

from tests.chaos.logscan import scan

GOOD = '{"event": "handler.tencent.relay", "level": "info", "to_url": "rtmp://h/live/s?txSecret=[REDACTED]&txTime=1"}'
BILLIARD_BLOCK = [
    "Exception ignored in: <function Redis.__del__ at 0x7f>",
    "Traceback (most recent call last):",
    '  File "/v/billiard/common.py", line 1, in _shutdown_cleanup',
    "    sys.exit(-(256 - signum))",
    "SystemExit: -15",
]


def write(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_clean_json_logs_have_no_findings(tmp_path: Path) -> None:
    files = [
        write(tmp_path, "worker-1.log", [GOOD, "", *BILLIARD_BLOCK, GOOD]),
        write(tmp_path, "run-1.log", [f"shim     | {GOOD}"]),
        write(tmp_path, "redis.log", ["1:M 26 Nov 2026 13:58:08.054 * Ready to accept connections tcp"]),
        write(tmp_path, "mns-emulator.log", ["mns-emulator ready endpoint=http://h:1 access_key_id=demo-id"]),
    ]
    stats, findings = scan(files, {"key #0": "a-configured-key"})
    assert findings == []
    assert stats.lines == 11 and stats.uncaught == []


def test_non_json_lines_credentials_and_secrets_are_found(tmp_path: Path) -> None:
    files = [
        write(tmp_path, "shim-1.log", [GOOD, "INFO:     Started server process [42]"]),
        write(
            tmp_path,
            "worker-1.log",
            ['{"event": "fetch", "url": "https://b/a.mp4?OSSAccessKeyId=LTAI9&Expires=1"}'],
        ),
        write(tmp_path, "flower-1.log", ['{"event": "login", "detail": "key a-configured-key"}']),
    ]
    _, findings = scan(files, {"key #0": "a-configured-key"})
    assert findings == [
        "a line that is not JSON in shim-1.log line 2: INFO:     Started server process [42]",
        "an unredacted credential parameter in worker-1.log line 1",
        "key #0 appears in flower-1.log line 1",
    ]


def test_only_the_emulators_ready_line_is_exempt_in_its_log(tmp_path: Path) -> None:
    ready = "mns-emulator ready endpoint=http://127.0.0.1:4321 access_key_id=demo-id"
    files = [
        write(
            tmp_path,
            "mns-emulator.log",
            [ready, GOOD, "emulator: plain text", '{"event": "x", "url": "http://h/?access_key_id=demo-id"}'],
        )
    ]
    _, findings = scan(files, {"key #0": "a-configured-key"})
    assert findings == [
        "a line that is not JSON in mns-emulator.log line 3: emulator: plain text",
        "an unredacted credential parameter in mns-emulator.log line 4",
    ]
    _, findings = scan([write(tmp_path, "shim-1.log", [ready])], {})
    assert len(findings) == 2  # the exemption is the emulator's own, not any process's


def test_a_childs_wrapped_non_json_line_under_run_is_still_a_finding(tmp_path: Path) -> None:
    """``ims-worker run`` without a terminal wraps a child's plain line into JSON (``run.output``); the check
    judges what the child printed, so a stray line or an uncaught traceback is still found."""

    def line(process: str, text: str) -> str:
        return json.dumps({"process": process, "event": "run.output", "level": "info", "line": text})

    wrapped = [
        line("shim", "INFO:     Started server process [42]"),
        line("consumer", "Traceback (most recent call last):"),
        line("consumer", '  File "x.py", line 1, in f'),
        line("consumer", "OSError: boom"),
        '{"process":"shim",' + GOOD[1:],
    ]
    stats, findings = scan([write(tmp_path, "run-1.log", wrapped)], {})
    assert "a line that is not JSON in run-1.log line 1: INFO:     Started server process [42]" in findings
    assert stats.uncaught == ["run-1.log line 2: OSError: boom"]
    assert stats.events["handler.tencent.relay"] == 1
