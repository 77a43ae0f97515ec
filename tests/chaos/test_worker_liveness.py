"""A worker whose consumer stopped taking messages fails ``ims-worker probe`` while ``inspect ping`` answers.

The scenario of celery/celery #8030, #8082, #6348 (a worker silently stops consuming after a Redis reconnect
or a Sentinel failover), produced on a real worker by cancelling its consumer of the ``ims`` queue through
remote control: the remote-control channel keeps answering, as in those reports. Events then wait in the
queue; the probe fails within the stall bound plus one recording interval.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.celery_worker import CELERY, REPO_ROOT, running_worker, wait_until, worker_env
from tests.conftest import SAMPLES_DIR
from worker.delivery.publish import Publisher
from worker.execution.progress import RECORD_INTERVAL_SECONDS
from worker.providers import normalize
from worker.settings import load_settings

pytestmark = pytest.mark.chaos

IMS_WORKER = str(Path(sys.executable).with_name("ims-worker"))
STALL = 10.0  # the smallest the setting allows (default 120 s)


def publish(redis_url: str, count: int) -> None:
    payload = json.loads((SAMPLES_DIR / "ims" / "FileUploadComplete.json").read_text())
    publisher = Publisher(load_settings(broker_url=redis_url))
    for _ in range(count):
        payload["MessageId"] = f"liveness-{time.time_ns()}"
        publisher.publish(normalize("ims", json.dumps(payload).encode()))
    publisher.close()


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env=worker_env(env), cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def test_a_worker_that_stopped_consuming_fails_its_probe_while_ping_answers(
    redis_url: str, tmp_path: Path
) -> None:
    record = tmp_path / "progress.json"
    env = {
        "IMS_WORKER_BROKER_URL": redis_url,
        "IMS_WORKER_WORKER_PROGRESS_FILE": str(record),
        "IMS_WORKER_WORKER_STALL_SECONDS": str(STALL),
    }
    probe = (IMS_WORKER, "probe")
    with running_worker(env) as worker:
        node = worker.hostname.replace("%h", socket.gethostname())
        wait_until(record.exists, timeout=RECORD_INTERVAL_SECONDS * 3)
        publish(redis_url, 3)
        healthy = run(env, *probe)
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr

        cancelled = run(env, CELERY, "-A", "worker.app", "control", "cancel_consumer", "ims", "-d", node)
        assert "no longer consuming" in cancelled.stdout, cancelled.stdout + cancelled.stderr
        broke_at = time.monotonic()
        publish(redis_url, 3)  # they wait: nothing takes them

        def probe_fails() -> bool:
            return run(env, *probe).returncode == 1

        wait_until(probe_fails, timeout=STALL + 3 * RECORD_INTERVAL_SECONDS, interval=1.0)
        detected = time.monotonic() - broke_at
        failing = run(env, *probe)
        assert "3 messages wait in" in failing.stdout and "its consumer is stuck" in failing.stdout, (
            failing.stdout
        )
        ping = run(env, CELERY, "-A", "worker.app", "inspect", "ping", "-d", node, "--timeout", "10")
        assert ping.returncode == 0 and "pong" in ping.stdout, ping.stdout + ping.stderr  # what deploy/ used
        print(f"probe failed {detected:.1f} s after the consumer stopped (stall bound {STALL:g} s)")

        # Consuming again: progress resumes and the probe passes once the record is rewritten.
        run(env, CELERY, "-A", "worker.app", "control", "add_consumer", "ims", "-d", node)
        wait_until(
            lambda: run(env, *probe).returncode == 0, timeout=3 * RECORD_INTERVAL_SECONDS, interval=1.0
        )
        assert worker.alive()
