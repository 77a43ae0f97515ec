"""Helpers for consumer acceptance tests: a mixed IMS workload, a real ``ims-worker consume`` subprocess,
and the end-state check every scenario ends with."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory

import redis

from tests.celery_worker import REPO_ROOT, worker_env
from tests.conftest import SAMPLES_DIR
from tests.mns_emulator import EmulatorHandle
from tests.plugins.recorder import runs_key
from worker.delivery.deadletter import DeadLetterStore
from worker.providers import normalize

IMS_WORKER = str(Path(sys.executable).with_name("ims-worker"))


@dataclass
class Workload:
    """Bodies to send and what must come of them."""

    bodies: list[str] = field(default_factory=list)
    valid: dict[str, str] = field(default_factory=dict)  # event id -> normalized type
    garbage: list[str] = field(default_factory=list)  # bodies that must end in the dead-letter store


def mixed_workload(total: int) -> Workload:
    """IMS samples of all 29 types made unique, half plain JSON, half base64, 2% unknown types, 1% garbage."""
    samples = [json.loads(p.read_text()) for p in sorted((SAMPLES_DIR / "ims").glob("*.json"))]
    work = Workload()
    for seq in range(total):
        if seq % 100 == 7:
            # Half not JSON at all, half JSON that is no IMS event (no EventType): both must be dead-lettered.
            body = f"garbage-{seq} <not json>" if seq % 200 == 7 else json.dumps({"UserId": seq})
            work.garbage.append(body)
            work.bodies.append(body)
            continue
        payload = dict(samples[seq % len(samples)])
        if seq % 50 == 3:
            payload["EventType"] = "SomethingIMSAddsNextYear"
        payload["TestSeq"] = seq  # providers add fields; extras are kept, and make each event unique
        text = json.dumps(payload)
        event = normalize("ims", text)[0]
        work.valid[event.id] = event.type
        work.bodies.append(base64.b64encode(text.encode()).decode() if seq % 2 else text)
    return work


def consumer_env(mns: EmulatorHandle, redis_url: str, queue: str, **extra: str) -> dict[str, str]:
    env = {
        "IMS_WORKER_BROKER_URL": redis_url,
        "IMS_WORKER_MNS_ENDPOINT": mns.endpoint,
        "IMS_WORKER_MNS_ACCESS_KEY_ID": mns.access_key_id,
        "IMS_WORKER_MNS_ACCESS_KEY_SECRET": mns.access_key_secret,
        "IMS_WORKER_MNS_QUEUES": queue,
        "IMS_WORKER_MNS_WAIT_SECONDS": "1",
        "IMS_WORKER_MNS_SOCKET_TIMEOUT": "5",
        "IMS_WORKER_CONSUMER_METRICS_PORT": "0",
        "IMS_WORKER_CONSUMER_GRACE_SECONDS": "10",
        "IMS_WORKER_LOG_FORMAT": "json",
    }
    env.update(extra)
    return env


@dataclass
class ConsumerProcess:
    process: subprocess.Popen[bytes]
    log_path: Path
    final_output: str | None = None  # kept once the log file is gone

    def output(self) -> str:
        if self.final_output is not None:
            return self.final_output
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self, timeout: float) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


@contextlib.contextmanager
def running_consumer(env: Mapping[str, str]) -> Iterator[ConsumerProcess]:
    with TemporaryDirectory(prefix="consumer-") as tmp:
        log_path = Path(tmp) / "consumer.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [IMS_WORKER, "consume"],
                cwd=REPO_ROOT,
                env=worker_env(env),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        consumer = ConsumerProcess(process, log_path)
        try:
            yield consumer
        finally:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            consumer.final_output = consumer.output()


def handled_once(redis_url: str, work: Workload) -> tuple[int, list[str]]:
    """How many valid events were handled, and the ids whose handler ran other than exactly once."""
    client = redis.Redis.from_url(redis_url)
    try:
        keys = [runs_key("record", event_id) for event_id in work.valid]
        runs = client.mget(keys)
    finally:
        client.close()
    handled = sum(1 for value in runs if value is not None)
    wrong = [
        eid for eid, value in zip(work.valid, runs, strict=True) if value is not None and int(value) != 1
    ]
    return handled, wrong


def check_end_state(redis_url: str, work: Workload, mns: EmulatorHandle, queue: str) -> None:
    """Every valid event handled once with its type, garbage dead-lettered verbatim, the queue empty."""
    handled, wrong = handled_once(redis_url, work)
    assert wrong == [], f"handler ran more than once for {len(wrong)} events, e.g. {wrong[:3]}"
    assert handled == len(work.valid)
    client = redis.Redis.from_url(redis_url)
    try:
        for event_id, event_type in list(work.valid.items())[:: max(1, len(work.valid) // 50)]:
            assert client.hget(f"test:seen:{event_id}", "type") == event_type.encode()
        unknown = [eid for eid, etype in work.valid.items() if etype == "unknown.ims"]
        assert unknown and all(client.hget(f"test:seen:{eid}", "type") == b"unknown.ims" for eid in unknown)
    finally:
        client.close()
    store = DeadLetterStore(redis_url)
    try:
        dead = store.list()
    finally:
        store.close()
    assert sorted(entry.raw_text for entry in dead) == sorted(work.garbage)
    assert all(entry.reason == "invalid-payload" and entry.error for entry in dead)
    stats = mns.stats(queue)
    assert stats.total == 0, stats
