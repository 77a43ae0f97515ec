"""The read and repair commands name the Redis they ask, and find a running ``ims-worker run``'s Redis when
nothing is configured: ``make run`` in one shell, ``ims-worker trace`` in another, as the README says."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli import IMS_WORKER, clean_env, cli
from worker.devtools.embedded import ENV_FILE_NAME


@pytest.mark.integration
def test_while_a_run_is_running_the_cli_finds_its_redis(tmp_path: Path) -> None:
    run = subprocess.Popen(
        [IMS_WORKER, "run", "--demo"],
        cwd=tmp_path,
        env=clean_env({"IMS_WORKER_WORKER_CONCURRENCY": "2", "IMS_WORKER_CONSUMER_GRACE_SECONDS": "5"}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        found: list[dict[str, object]] = []
        while time.monotonic() < deadline and len(found) < 43 and run.poll() is None:
            if (tmp_path / ".ims-worker" / ENV_FILE_NAME).exists():
                recent = cli("events", "recent", "--json", "--limit", "100", cwd=tmp_path, timeout=30)
                if recent.returncode == 0:
                    found = json.loads(recent.stdout)
            time.sleep(1)
        assert len(found) == 43, found
        assert "the Redis of the running `ims-worker run` (from .ims-worker/embedded.env)" in recent.stderr
        assert "ims-worker events recent: reading redis://127.0.0.1:" in recent.stderr
        replay = cli("replay", "--since", "1h", "--type", "rtc.*", "--dry-run", cwd=tmp_path, timeout=30)
        assert replay.returncode == 0, replay.stderr
        assert "the Redis of the running `ims-worker run`" in replay.stderr
    finally:
        run.send_signal(signal.SIGTERM)
        run.wait(timeout=60)


def test_a_configured_redis_is_named_when_it_fails(tmp_path: Path) -> None:
    env = {"IMS_WORKER_BROKER_URL": "redis://ims:secret-password-1@127.0.0.1:1/0"}
    done = cli("trace", "MediaId=x", env=env, cwd=tmp_path, timeout=30)
    assert done.returncode == 1
    assert "reading" not in done.stderr  # the user's own choice is not announced, only named when it fails
    assert "Redis at redis://" in done.stderr and "@127.0.0.1:1/0 is unreachable" in done.stderr
    assert "secret-password-1" not in done.stderr
