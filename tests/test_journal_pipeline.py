"""The event journal against a real pipeline: real shim (uvicorn), real Redis, one real Celery worker.

Handlers are ``tests.plugins.recorder`` (count runs in Redis, fail on flags). One worker serves the module;
each test starts from a flushed database. The commands are run as a user runs them (``worker.cli.main``).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis

from tests.celery_worker import RECORDER, CeleryWorker, running_worker, wait_until
from tests.conftest import SAMPLES_DIR
from tests.plugins.recorder import runs_key
from tests.servers import RedisServer, free_port
from tests.shim_server import serving
from worker import keyspace
from worker.cli import main
from worker.delivery.publish import Publisher
from worker.events import Transport
from worker.providers import normalize
from worker.settings import Settings, load_settings
from worker.shim import ENDPOINTS, create_app, sign_request

pytestmark = pytest.mark.integration

PLUGIN = "tests.plugins.recorder"
RECORD = f"{PLUGIN}:record"
FRAGILE = "tests.plugins.recorder:fragile"
SHARED_MEDIA = "71151b80f2d471ecb21b472190a9****"  # three IMS samples of three types name this media


class Pipeline:
    def __init__(self, base: str, client: httpx.Client, settings: Settings, worker: CeleryWorker) -> None:
        self.base, self.client, self.settings, self.worker = base, client, settings, worker

    def post_ims(self, body: bytes) -> list[dict[str, Any]]:
        headers, query, body = sign_request("ims", body, self.settings)
        answer = self.client.post(ENDPOINTS["ims"], content=body, headers=headers, params=query)
        assert answer.status_code == 200, answer.text
        events: list[dict[str, Any]] = answer.json()["events"]
        return events


@pytest.fixture(scope="module")
def pipeline(redis_server: RedisServer) -> Iterator[Pipeline]:
    port = free_port()
    settings = load_settings(
        broker_url=redis_server.url, shim_public_url=f"http://127.0.0.1:{port}", ims_callback_key="k"
    )
    env = {
        "IMS_WORKER_BROKER_URL": redis_server.url,
        "IMS_WORKER_HANDLER_MODULES": RECORDER,
        "IMS_WORKER_TASK_MAX_ATTEMPTS": "2",
        "IMS_WORKER_RETRY_BACKOFF_SECONDS": "0.05",
        "IMS_WORKER_RETRY_BACKOFF_MAX_SECONDS": "0.1",
    }
    with (
        running_worker(env) as worker,
        serving(create_app(settings), port) as base,
        httpx.Client(base_url=base, timeout=10) as client,
    ):
        yield Pipeline(base, client, settings, worker)


@pytest.fixture
def store(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    monkeypatch.setenv("IMS_WORKER_BROKER_URL", redis_url)
    monkeypatch.setenv("IMS_WORKER_HANDLER_MODULES", RECORDER)
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def unique_ims(name: str, **body: str) -> bytes:
    payload = json.loads((SAMPLES_DIR / "ims" / f"{name}.json").read_text())
    payload["TestSeq"] = uuid.uuid4().hex  # a new provider event, so a new event id
    payload["MessageBody"].update(body)
    return json.dumps(payload).encode()


def idle(store: redis.Redis) -> bool:
    queues = ("ims", "live", "rtc", "tencent", "unknown")
    return not any(store.llen(q) for q in queues) and not store.hlen("unacked")


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def wait_status(store: redis.Redis, event_id: str, status: str, worker: CeleryWorker) -> None:
    def reached() -> bool:
        entries = store.lrange(f"ims-worker:j:e:{event_id}", 0, -1)
        return any(json.loads(e)["e"] == status for e in entries)

    try:
        wait_until(reached, timeout=20)
    except TimeoutError:
        pytest.fail(f"{event_id} never reached {status}:\n{worker.output()[-3000:]}")


def test_trace_shows_every_step_in_order_with_a_retry_and_a_dead_letter(
    pipeline: Pipeline, store: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    body = unique_ims("ProduceMediaComplete")
    event_id = normalize("ims", body)[0].id
    store.set(f"test:broken:{event_id}", 1)  # fragile fails on both attempts: retry, then dead letter
    (answer,) = pipeline.post_ims(body)
    assert answer["id"] == event_id
    pipeline.post_ims(body)  # the provider retries its delivery: a duplicate
    wait_status(store, event_id, "dead-lettered", pipeline.worker)

    trace = cli_json(capsys, "trace", event_id)
    assert [e["event_id"] for e in trace["events"]] == [event_id]
    assert trace["events"][0]["status"] == "dead-lettered"
    steps = [(s["step"], s.get("h", ""), s.get("n")) for s in trace["steps"]]
    own = [s for s in steps if not s[1] or s[1].startswith("tests.")]  # the built-in handlers run too
    # Handlers run in name order; successes are written as they happen, failures when the attempt ends.
    first_try = [
        ("attempt", "", 1),
        *((("succeeded", f"{PLUGIN}:{h}", None)) for h in ("flaky", "record", "slow")),
    ]
    first_try += [("failed", FRAGILE, None), ("retried", "", None)]
    second_try = [
        ("attempt", "", 2),
        *((("skipped", f"{PLUGIN}:{h}", None)) for h in ("flaky", "record", "slow")),
    ]
    second_try += [("failed", FRAGILE, None), ("dead-lettered", "", None)]
    assert own[:2] == [("received", "", None), ("enqueued", "", None)]
    assert [s for s in own[2:] if s[0] not in ("received", "duplicate")] == first_try + second_try
    assert ("duplicate", "", None) in own  # when the duplicate came relative to the worker is not fixed
    times = [s["at"] for s in trace["steps"]]
    assert times == sorted(times)
    received = trace["steps"][0]
    assert (received["src"], received["via"], received["type"]) == ("ims", "http", "ims.ProduceMediaComplete")
    assert "req" in received  # the HTTP request id
    failed = next(s for s in trace["steps"] if s["step"] == "failed")
    assert "RuntimeError" in failed["err"] and "hunter2" not in failed["err"]  # summarized, redacted
    dead = trace["steps"][-1]
    assert dead["reason"] == "retries exhausted" and dead["dl"]

    assert main(["trace", event_id]) == 0  # the table a terminal shows
    table = capsys.readouterr().out
    assert "dead-lettered" in table and "retried" in table and event_id in table
    failed_now = cli_json(capsys, "events", "recent", "--failed")
    assert [e["event_id"] for e in failed_now] == [event_id]

    store.delete(f"test:broken:{event_id}")  # the fix; then the redrive is journaled too
    assert main(["dlq", "redrive", "--yes"]) == 0
    wait_status(store, event_id, "handled", pipeline.worker)
    after = [s["step"] for s in cli_json(capsys, "trace", event_id)["steps"]]
    assert after[after.index("dead-lettered") + 1 :][:3] == ["redriven", "enqueued", "attempt"]
    assert after[-1] == "handled"


def test_trace_by_media_id_returns_events_of_several_types(
    pipeline: Pipeline, store: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    names = ("RegisterMediaComplete", "CreateAuditComplete", "DeleteMediaComplete")
    ids = [pipeline.post_ims(unique_ims(n))[0]["id"] for n in names]
    other = pipeline.post_ims(unique_ims("FileUploadComplete"))[0]["id"]
    # The consumer's path: the same publisher, events carrying their MNS transport.
    mns = Transport(kind="mns", queue="ice-callback", message_id="M-1", dequeue_count=2)
    (from_mns,) = normalize("ims", unique_ims("MediaBaseChangeComplete", MediaId=SHARED_MEDIA), transport=mns)
    publisher = Publisher(load_settings())
    publisher.publish([from_mns])
    publisher.close()
    for event_id in [*ids, from_mns.id]:
        wait_status(store, event_id, "handled", pipeline.worker)

    for key in (SHARED_MEDIA, f"MediaId={SHARED_MEDIA}"):
        trace = cli_json(capsys, "trace", key)
        found = {e["event_id"]: e["type"] for e in trace["events"]}
        assert set(found) == {*ids, from_mns.id}, key
        assert len(set(found.values())) == 4
        assert other not in found
        assert {e["status"] for e in trace["events"]} == {"handled"}
    received = next(s for s in trace["steps"] if s["event_id"] == from_mns.id and s["step"] == "received")
    assert (received["via"], received["q"], received["mid"], received["dq"]) == (
        "mns",
        "ice-callback",
        "M-1",
        2,
    )
    capsys.readouterr()
    assert main(["trace", f"JobId={SHARED_MEDIA}", "--json"]) == 1  # Name= disambiguates; none: exit 1
    assert json.loads(capsys.readouterr().out)["events"] == []

    recent = cli_json(capsys, "events", "recent", "--type", "ims.*Media*", "--since", "5m")
    assert {e["type"] for e in recent} >= {"ims.RegisterMediaComplete", "ims.DeleteMediaComplete"}
    assert "ims.FileUploadComplete" not in {e["type"] for e in recent}


def _runs(store: redis.Redis, handler: str, events: list[str]) -> list[int]:
    return [int(store.get(runs_key(handler, e)) or 0) for e in events]


def test_replay_of_one_handler_for_a_time_window_runs_exactly_it_once_per_event(
    pipeline: Pipeline, store: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    def post(count: int) -> list[str]:
        return [pipeline.post_ims(unique_ims("FileUploadComplete"))[0]["id"] for _ in range(count)]

    before = post(2)
    time.sleep(0.05)
    since = datetime.now(UTC)
    inside = post(3)
    until = datetime.now(UTC)
    time.sleep(0.05)
    after = post(2)
    everything = before + inside + after
    wait_until(lambda: _runs(store, "slow", everything) == [1] * 7 and idle(store), timeout=20)

    window = ["--since", since.isoformat(), "--until", until.isoformat(), "--handler", RECORD]
    assert main(["replay", *window, "--dry-run"]) == 0
    listed = capsys.readouterr().out
    assert all(e in listed for e in inside) and not any(e in listed for e in before + after)
    assert _runs(store, "record", everything) == [1] * 7  # a dry run changes nothing

    assert main(["replay", *window, "--yes", "--rate", "200"]) == 0
    wait_until(lambda: _runs(store, "record", inside) == [2, 2, 2] and idle(store), timeout=20)
    time.sleep(0.5)  # anything extra would have run by now
    assert _runs(store, "record", everything) == [1, 1, 2, 2, 2, 1, 1]
    for handler in ("flaky", "fragile", "slow"):
        assert _runs(store, handler, everything) == [1] * 7, handler

    steps = cli_json(capsys, "trace", inside[0])["steps"]
    kinds = [s["step"] for s in steps]
    assert "replayed" in kinds and kinds[-1] == "handled"
    replay_part = steps[kinds.index("replayed") :]
    assert [s["h"] for s in replay_part if s["step"] == "succeeded"] == [RECORD]
    assert {s["why"] for s in replay_part if s["step"] == "skipped"} == {"not replayed"}

    store.delete(keyspace.journal_payload(inside[1]))  # as if its payload had aged out
    assert main(["replay", "--event", inside[1], "--event", inside[2], "--handler", RECORD, "--dry-run"]) == 1
    listed = capsys.readouterr().out
    assert "payload aged out" in listed and "1 of 2 replayable" in listed
