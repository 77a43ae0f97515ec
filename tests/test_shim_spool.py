"""The shim's durable spool against a real Redis that is stopped, frozen and full, through a real uvicorn.

What a provider sees (200 while Redis is out, 503 only when the spool cannot take the request) and what the
pipeline ends with (each event enqueued once, the spool empty) are asserted; the provider-policy chaos
scenarios (tests/chaos/test_spool_scenarios.py) run the same paths at the defaults with a Celery worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.celery_worker import wait_until
from tests.chaos.payloads import unique_payload
from tests.servers import RedisServer, free_port, is_queue, running_redis
from tests.shim_server import serving
from worker.errors import ConfigurationError
from worker.journal.reader import JournalReader
from worker.settings import Settings, load_settings
from worker.shim import ENDPOINTS, ShimApp, create_app, sign_request
from worker.shim.spoolfile import summarize

KEY = "spool-test-key"


_SEQ = iter(range(10**9))


def ims_body(n: int) -> bytes:
    """A valid IMS callback whose event id no other call of the test run shares."""
    return json.dumps(unique_payload("ims", 7_000_000 + next(_SEQ) * 10 + n % 10)).encode()


@dataclass
class Served:
    app: ShimApp
    client: httpx.Client
    settings: Settings
    redis: RedisServer

    def post(self, body: bytes, *, key: str | None = KEY) -> httpx.Response:
        if key is None:  # unsigned
            return self.client.post(
                ENDPOINTS["ims"], content=body, headers={"Content-Type": "application/json"}
            )
        signed = sign_request("ims", body, self.settings, key=key)
        return self.client.post(ENDPOINTS["ims"], content=signed.body, headers=signed.headers)

    def queued(self) -> int:
        client = redis.Redis.from_url(self.redis.url)
        try:
            return sum(client.llen(k) for k in client.scan_iter() if is_queue(client, k))
        finally:
            client.close()

    def metric(self, name: str) -> float:
        text = self.client.get("/metrics").text
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path / "redis") as server:
        yield server
        if server.process is not None:
            os.kill(server.process.pid, signal.SIGCONT)  # a test that froze it and failed


@contextlib.contextmanager
def serve(redis_server: RedisServer, **overrides: Any) -> Iterator[Served]:
    port = free_port()
    settings = load_settings(
        broker_url=redis_server.url,
        shim_public_url=f"http://127.0.0.1:{port}",
        ims_callback_key=KEY,
        **overrides,
    )
    app = create_app(settings)
    with serving(app, port) as base, httpx.Client(base_url=base, timeout=10) as client:
        yield Served(app, client, settings, redis_server)


@pytest.fixture
def shim(redis_server: RedisServer) -> Iterator[Served]:
    with serve(redis_server) as served:
        yield served


def test_a_redis_outage_is_answered_200_from_the_spool_and_drained_once_redis_is_back(shim: Served) -> None:
    shim.redis.stop()
    bodies = [ims_body(n) for n in range(5)]
    answers = [shim.post(body) for body in bodies]
    assert [a.status_code for a in answers] == [200] * 5, answers[0].text
    assert all(a.json()["spooled"] is True for a in answers)
    ready = shim.client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "redis": "unavailable",
                                                         "spool": "accepting"}  # fmt: skip
    assert shim.metric("ims_worker_shim_spooled_events_total") == 5
    assert shim.metric("ims_worker_shim_spool_entries") == 5
    assert shim.app.spool is not None and shim.app.spool.depth == 5

    shim.redis.start()
    wait_until(lambda: shim.app.spool is not None and shim.app.spool.depth == 0, timeout=20)
    assert shim.queued() == 5
    assert shim.metric("ims_worker_shim_spool_drained_events_total") == 5
    assert shim.metric("ims_worker_shim_spool_entries") == 0
    # The journal says the event came through the spool and how long it waited there.
    client = redis.Redis.from_url(shim.redis.url)
    try:
        (history,) = JournalReader(client).histories([answers[0].json()["events"][0]["id"]])
    finally:
        client.close()
    (received,) = [step for step in history.steps if step.kind == "received"]
    assert 0 < received.fields["spooled_ms"] < 60_000
    # The provider's retry of an event that came through the spool is a duplicate, as on the fast path.
    again = shim.post(bodies[0])
    assert again.status_code == 200 and again.json()["events"][0]["duplicate"] is True
    assert shim.queued() == 5


def test_a_frozen_redis_costs_the_budget_not_the_providers_3_seconds(shim: Served) -> None:
    assert shim.redis.process is not None
    os.kill(shim.redis.process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        first = shim.post(ims_body(1))
        elapsed = time.monotonic() - started
        assert first.status_code == 200 and first.json()["spooled"] is True
        assert elapsed < 1.5, elapsed  # the 500 ms budget, not the 2 s publish timeout
        second = shim.post(ims_body(2))  # Redis just failed: straight to the spool
        assert second.status_code == 200 and second.json()["spooled"] is True
    finally:
        os.kill(shim.redis.process.pid, signal.SIGCONT)
    wait_until(lambda: shim.app.spool is not None and shim.app.spool.depth == 0, timeout=20)
    # The first publish may have landed after the budget too: either way each event is queued once.
    assert shim.queued() == 2


def test_redis_near_maxmemory_goes_to_the_spool_then_drains_when_memory_is_back(shim: Served) -> None:
    client = redis.Redis.from_url(shim.redis.url)
    try:
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", int(used * 1.05))  # above the 0.9 ratio, below the hard limit
        time.sleep(1.1)  # the guard reads INFO at most once a second
        answer = shim.post(ims_body(1))
        assert answer.status_code == 200 and answer.json()["spooled"] is True
        time.sleep(2)
        assert shim.queued() == 0  # the drainer does not write into a Redis near its limit either
        client.config_set("maxmemory", 0)
    finally:
        client.close()
    wait_until(lambda: shim.queued() == 1, timeout=20)


def test_unauthenticated_and_unsigned_requests_are_never_spooled(redis_server: RedisServer) -> None:
    with serve(redis_server, shim_allow_unsigned="ims") as shim:
        redis_server.stop()
        refused = shim.post(ims_body(1), key=None)  # unsigned, knowingly accepted: not verified, not spooled
        assert refused.status_code == 503 and refused.json()["error"] == "broker_unavailable"
        assert shim.post(ims_body(2), key="forged").status_code == 401  # signed ones are still verified
        assert shim.post(ims_body(3)).json()["spooled"] is True  # and a good signature is spooled
        wait_until(lambda: shim.app.spool is not None and shim.app.spool.depth == 1, timeout=5)
        redis_server.start()


def test_a_bad_signature_is_401_and_kept_nowhere(shim: Served) -> None:
    shim.redis.stop()
    answer = shim.post(ims_body(1), key="forged")
    assert answer.status_code == 401
    assert shim.app.spool is not None and shim.app.spool.depth == 0


def test_the_size_bound_answers_503_and_loses_nothing_answered_200(redis_server: RedisServer) -> None:
    with serve(redis_server, shim_spool_max_bytes=64 * 1024) as shim:
        redis_server.stop()
        accepted: list[httpx.Response] = []
        refused: list[httpx.Response] = []
        for n in range(200):
            answer = shim.post(ims_body(n))
            (accepted if answer.status_code == 200 else refused).append(answer)
        assert accepted and refused
        assert {a.status_code for a in refused} == {503}
        assert {a.json()["error"] for a in refused} == {"spool_full"}
        assert all(a.headers["retry-after"].isdigit() for a in refused)
        assert shim.client.get("/readyz").status_code == 503  # Redis out and the spool full: out of the pool
        assert shim.metric('ims_worker_shim_spool_refused_total{provider="ims",reason="spool_full"}') == len(
            refused
        )
        redis_server.start()
        expected = len(accepted)
        wait_until(lambda: shim.queued() == expected, timeout=30)
        accepted_ids = {a.json()["events"][0]["id"] for a in accepted}
        assert len(accepted_ids) == len(accepted)


def test_a_disk_that_refuses_the_write_is_503_never_500(shim: Served) -> None:
    """SQLite's page cap (``max_page_count``) makes a commit fail with SQLITE_FULL, the error a full disk
    gives (the chaos suite fills a real tmpfs instead)."""
    spool = shim.app.spool
    assert spool is not None
    spool.own.file._db.execute("PRAGMA max_page_count = 1")  # clamped to the pages in use
    shim.redis.stop()
    answers = [shim.post(ims_body(n)) for n in range(20)]
    refused = [a for a in answers if a.status_code != 200]
    assert refused, "the capped file took 20 requests"
    assert {a.status_code for a in refused} == {503}
    assert {a.json()["error"] for a in refused} == {"spool_unavailable"}
    assert all("full" in a.json()["detail"] and a.headers["retry-after"] for a in refused)
    assert shim.client.get("/readyz").status_code == 503  # Redis out and the disk refusing: out of the pool
    accepted = len(answers) - len(refused)
    assert spool.depth == accepted  # what was answered 200 is still there
    shim.redis.start()
    wait_until(lambda: shim.queued() == accepted, timeout=20)


def test_an_unwritable_spool_directory_is_a_clear_error_at_start(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    settings = load_settings(ims_callback_key=KEY, shim_spool_dir=str(blocker / "spool"))
    with pytest.raises(ConfigurationError, match="IMS_WORKER_SHIM_SPOOL_DIR") as caught:
        create_app(settings)
    assert "not-a-directory" in str(caught.value)


# A process that spooled two requests and was killed with kill -9 (its death releases its lock).
_DIES_WITH_A_SPOOL = """
import json, os, signal, sys, time
from worker.providers import normalize
from worker.shim.spool import encode_events
from worker.shim.spooldir import SpoolDir
from pathlib import Path
held = SpoolDir(Path(sys.argv[1])).claim_own()
rows = []
for body in sys.argv[2:]:
    events = normalize("ims", json.loads(body))
    rows.append((int(time.time() * 1000), "ims", os.urandom(8).hex(), encode_events(events)))
held.file.append(rows)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_file_left_by_a_kill_9ed_process_is_adopted_and_drained_at_start(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "shim-spool"
    spool_dir.mkdir()
    bodies = [ims_body(1).decode(), ims_body(2).decode()]
    died = subprocess.run([sys.executable, "-c", _DIES_WITH_A_SPOOL, str(spool_dir), *bodies], check=False)
    assert died.returncode == -signal.SIGKILL
    (left,) = spool_dir.glob("spool-*.db")
    assert summarize(left)[0] == 2
    with serve(redis_server, shim_spool_dir=str(spool_dir)) as shim:
        wait_until(lambda: shim.queued() == 2, timeout=20)
        wait_until(lambda: not left.exists() and not left.with_suffix(".lock").exists(), timeout=10)
        assert shim.app.spool is not None and shim.app.spool.depth == 0


def test_a_full_redis_is_spooled_not_a_503(shim: Served) -> None:
    """Redis filling up between two readings of the memory guard (it reads INFO once a second): its OOM
    refusal, or the guard's next reading, sends the signed request to the spool."""
    client = redis.Redis.from_url(shim.redis.url)
    spool = shim.app.spool
    assert spool is not None
    try:
        for n in range(10):
            client.config_set("maxmemory", "0")
            assert (
                shim.post(ims_body(100 + 2 * n)).json().get("spooled") is None
            )  # primes the guard: room left
            client.config_set("maxmemory", str(int(client.info("memory")["used_memory"]) // 2))
            answer = shim.post(ims_body(101 + 2 * n))
            assert answer.status_code == 200 and answer.json()["spooled"] is True, answer.text
            if spool.depth:
                break
            time.sleep(1.1)  # drained already: try again
    finally:
        client.config_set("maxmemory", "0")
        client.close()
    wait_until(lambda: spool.depth == 0, timeout=20)
