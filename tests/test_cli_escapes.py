"""The read commands never hand an event's bytes to the operator's terminal as control sequences.

Seen before (issue 22): an RTC ``MsgId`` holding ``ESC [2J`` and ``ESC ]0;...BEL`` cleared the screen and set
the window title when ``ims-worker events recent`` or ``trace`` printed it. Each command runs as the real
``ims-worker`` script against a private Redis; its output must hold no control character but newline and tab.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.conftest import SAMPLES_DIR
from worker.cli.terminal import printable
from worker.delivery.deadletter import DeadLetterStore
from worker.delivery.publish import Publisher
from worker.providers import normalize
from worker.settings import load_settings

pytestmark = pytest.mark.integration

SCRIPT = str(Path(sys.executable).with_name("ims-worker"))
HOSTILE = "\x1b[2J\x1b]0;pwned\x07\x9b31m\u202e"  # clear screen, set title, C1 CSI, right-to-left override


def run(redis_url: str, *argv: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMS_WORKER_")}
    env.update(IMS_WORKER_BROKER_URL=redis_url, IMS_WORKER_LOG_FORMAT="json")
    done = subprocess.run([SCRIPT, *argv], env=env, capture_output=True, timeout=60, check=False)
    text = (done.stdout + done.stderr).decode()
    assert done.returncode == 0, text
    return text


def assert_clean(text: str) -> None:
    controls = sorted({c for c in text if not c.isprintable() and c not in "\n\t"})
    assert not controls, f"control characters reached the terminal: {controls!r}"


def test_events_recent_trace_and_dlq_escape_what_events_carry(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMS_WORKER_BROKER_URL", redis_url)
    payload = json.loads((SAMPLES_DIR / "rtc" / "eventsub.json").read_text())
    payload["MsgId"] = f"msg-{HOSTILE}"
    events = normalize("rtc", orjson.dumps(payload))
    publisher = Publisher(load_settings())
    publisher.publish(events)
    publisher.close()
    store = DeadLetterStore(redis_url)
    store.add(
        raw=events[0].raw, source="rtc", reason="retries exhausted", event=events[0], error=f"boom {HOSTILE}"
    )

    recent = run(redis_url, "events", "recent")
    assert_clean(recent)
    assert printable(events[0].id) in recent  # the id is there, escaped
    assert_clean(run(redis_url, "trace", events[0].id))
    assert_clean(run(redis_url, "dlq", "list"))
    (entry,) = store.list(limit=1)
    shown = run(redis_url, "dlq", "show", entry.id)
    assert_clean(shown)
    assert json.loads(shown)["error"] == f"boom {HOSTILE}"  # escaped for the terminal, still the same JSON
