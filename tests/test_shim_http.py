"""Acceptance of the webhook shim: real uvicorn on loopback, real AsyncPublisher, real Redis.

Every refusal is checked twice: the HTTP answer (status + JSON reason) and Redis (nothing enqueued).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from structlog.testing import capture_logs

from tests.celery_worker import running_worker, wait_until
from tests.conftest import SAMPLES_DIR
from tests.servers import RedisServer, free_port, is_queue
from tests.shim_server import serving
from worker.delivery.deadletter import DeadLetterStore
from worker.settings import Settings, load_settings
from worker.shim import ENDPOINTS, ShimApp, create_app, sign_request, source_of
from worker.shim.accesslog import AccessLog

pytestmark = pytest.mark.integration

SECRETS = {
    "ims_callback_key": "ims-old,ims-new",
    "live_auth_key": "live-key",
    "rtc_app_key": "rtc-old,rtc-new",
    "tencent_callback_key": "tencent-key",
    "caster_token": "caster-old,caster-new",
}
LIMIT = 64 * 1024
SAMPLES = sorted(SAMPLES_DIR.glob("*/*.json"))


def sample_id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


@dataclass
class Shim:
    base: str
    client: httpx.Client
    app: ShimApp
    settings: Settings

    def post(
        self,
        provider: str,
        body: bytes,
        *,
        sign: bool = True,
        key: str | None = None,
        now: float | None = None,
        public_url: str | None = None,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> httpx.Response:
        source = source_of(provider)
        if sign:
            signed_headers, signed_query, body = sign_request(
                source, body, self.settings, key=key, now=now, public_url=public_url
            )
        else:
            signed_headers, signed_query = {"Content-Type": "application/json"}, {}
        signed_headers.update(headers or {})
        signed_query.update(query or {})
        return self.client.post(ENDPOINTS[source], content=body, headers=signed_headers, params=signed_query)


@pytest.fixture(scope="module")
def shim(redis_server: RedisServer) -> Iterator[Shim]:
    port = free_port()
    settings = load_settings(
        broker_url=redis_server.url,
        shim_public_url=f"http://127.0.0.1:{port}",
        shim_max_body_bytes=LIMIT,
        **SECRETS,
    )
    app = create_app(settings)
    with serving(app, port) as base, httpx.Client(base_url=base, timeout=10) as client:
        yield Shim(base, client, app, settings)


@pytest.fixture
def store(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def queued(store: redis.Redis) -> int:
    """Task messages waiting in any queue (Celery's Redis transport keeps each queue as a list)."""
    return sum(store.llen(key) for key in store.scan_iter() if is_queue(store, key))


def away_from_receipt_bucket_edge() -> None:
    # Some ids cover the receipt time in 10-minute buckets (worker.events.ids): a repost that crosses a bucket
    # edge is, by design, a new id. Keep the repost test from straddling one.
    while time.time() % 600 > 590:
        time.sleep(0.5)


def test_every_sample_is_enqueued_once_and_a_repost_changes_nothing(shim: Shim, store: redis.Redis) -> None:
    away_from_receipt_bucket_edge()
    ids: set[str] = set()
    for path in SAMPLES:
        answer = shim.post(path.parent.name, path.read_bytes())
        assert answer.status_code == 200, (sample_id(path), answer.text)
        if path.parent.name == "tencent-css":
            assert answer.json() == {"code": 0}
        else:
            events = answer.json()["events"]
            assert events and all(not e["duplicate"] for e in events), sample_id(path)
            ids |= {e["id"] for e in events}
    expected = len(SAMPLES) + 1  # the RTC sample carries two events
    assert queued(store) == expected
    assert all(store.exists(f"ims-worker:dedupe:{event_id}") for event_id in ids)

    for path in SAMPLES:  # the provider retries everything (Tencent signs its retry anew)
        answer = shim.post(path.parent.name, path.read_bytes())
        assert answer.status_code == 200, sample_id(path)
        if path.parent.name != "tencent-css":
            assert all(e["duplicate"] for e in answer.json()["events"]), sample_id(path)
    assert queued(store) == expected
    metrics = shim.client.get("/metrics").text
    assert 'ims_worker_shim_events_total{outcome="duplicate",provider="tencent"} 4.0' in metrics


IMS = (SAMPLES_DIR / "ims" / "ProduceMediaComplete.json").read_bytes()
RECORD = (SAMPLES_DIR / "live-record" / "record_started.json").read_bytes()
CASTER = (SAMPLES_DIR / "live-caster" / "OperateCallback.json").read_bytes()
RTC = (SAMPLES_DIR / "rtc" / "eventsub.json").read_bytes()
TENCENT = (SAMPLES_DIR / "tencent-css" / "TaskStart.json").read_bytes()
HOUR = 3600.0

REFUSALS: list[Any] = [
    pytest.param("ims", IMS, {"key": "not-the-key"}, "bad_signature", id="ims-wrong-key"),
    pytest.param(
        "ims", IMS, {"headers": {"X-ICE-SIGNATURE": "0" * 32}}, "bad_signature", id="ims-wrong-signature"
    ),
    pytest.param(
        "ims", IMS, {"headers": {"X-ICE-TIMESTAMP": "1700000001"}}, "stale", id="ims-tampered-timestamp"
    ),
    pytest.param("ims", IMS, {"now": time.time() - HOUR}, "stale", id="ims-stale"),
    pytest.param("ims", IMS, {"now": time.time() + HOUR}, "future", id="ims-future"),
    pytest.param("ims", IMS, {"sign": False}, "missing", id="ims-missing-headers"),
    pytest.param("ims", IMS, {"public_url": "http://evil.example.com"}, "bad_signature", id="ims-other-url"),
    pytest.param(
        "ims", IMS, {"headers": {"X-ICE-TIMESTAMP": "soon"}}, "malformed", id="ims-malformed-timestamp"
    ),
    pytest.param("live-record", RECORD, {"key": "ims-old"}, "bad_signature", id="record-wrong-key"),
    pytest.param(
        "live-record", RECORD, {"headers": {"ALI-LIVE-SIGNATURE": ""}}, "missing", id="record-no-sig"
    ),
    pytest.param("live-record", RECORD, {"now": time.time() - HOUR}, "stale", id="record-stale"),
    pytest.param("rtc", RTC, {"key": "rtc-older"}, "bad_signature", id="rtc-wrong-key"),
    pytest.param("rtc", RTC, {"now": time.time() + HOUR}, "future", id="rtc-future"),
    pytest.param("rtc", RTC, {"public_url": "http://evil.example.com"}, "bad_signature", id="rtc-other-host"),
    pytest.param("rtc", RTC, {"sign": False}, "missing", id="rtc-missing-headers"),
    pytest.param("tencent", TENCENT, {"key": "nope"}, "bad_signature", id="tencent-wrong-key"),
    pytest.param("tencent", TENCENT, {"now": time.time() - HOUR}, "stale", id="tencent-stale"),
    pytest.param("tencent", TENCENT, {"now": time.time() + HOUR}, "future", id="tencent-future"),
    pytest.param("tencent", TENCENT, {"sign": False}, "missing", id="tencent-missing-fields"),
    pytest.param("live-caster", CASTER, {"sign": False}, "missing", id="caster-missing-token"),
    pytest.param(
        "live-caster", CASTER, {"query": {"token": "caster-older"}}, "bad_token", id="caster-wrong-token"
    ),
]


@pytest.mark.parametrize(("provider", "body", "how", "reason"), REFUSALS)
def test_bad_authentication_is_401_and_nothing_is_enqueued(
    shim: Shim, store: redis.Redis, provider: str, body: bytes, how: dict[str, Any], reason: str
) -> None:
    answer = shim.post(provider, body, **how)
    assert answer.status_code == 401, answer.text
    error = answer.json()
    assert (
        error["error"] == reason and error["detail"] and error["request_id"] == answer.headers["x-request-id"]
    )
    assert store.dbsize() == 0
    assert f'ims_worker_shim_auth_failures_total{{provider="{source_of(provider)}",reason="{reason}"}}' in (
        shim.client.get("/metrics").text
    )


def test_tencent_signature_covers_only_t(shim: Shim, store: redis.Redis) -> None:
    """Tencent signs ``t`` alone: a tampered ``t`` is refused, a tampered body with intact t/sign is not."""
    signed = json.loads(sign_request("tencent", TENCENT, shim.settings).body)
    tampered_t = shim.client.post(ENDPOINTS["tencent"], json={**signed, "t": signed["t"] + 1})
    assert tampered_t.status_code == 401 and tampered_t.json()["error"] == "bad_signature"
    assert store.dbsize() == 0
    tampered_body = shim.client.post(ENDPOINTS["tencent"], json={**signed, "stream_id": "changed"})
    assert tampered_body.status_code == 200 and queued(store) == 1


@pytest.mark.parametrize(
    ("provider", "keys", "how"),
    [
        ("ims", ("ims-old", "ims-new"), "key"),
        ("rtc", ("rtc-old", "rtc-new"), "key"),
        ("live-caster", ("caster-old", "caster-new"), "token"),
    ],
)
def test_key_rotation_accepts_both_keys(
    shim: Shim, store: redis.Redis, provider: str, keys: tuple[str, str], how: str
) -> None:
    for n, key in enumerate(keys):
        payload = json.loads({"ims": IMS, "rtc": RTC, "live-caster": CASTER}[provider])
        payload["MsgId" if provider == "rtc" else "EventType"] = payload.get("EventType", "") + f"x{n}"
        body = json.dumps(payload).encode()
        if how == "token":
            answer = shim.post(provider, body, sign=False, query={"token": key})
        else:
            answer = shim.post(provider, body, key=key)
        assert answer.status_code == 200, (key, answer.text)
    assert queued(store) == (4 if provider == "rtc" else 2)


@pytest.mark.parametrize(
    ("provider", "body", "code", "reason"),
    [
        ("ims", b'{"EventType": "ProduceMediaComplete",', "invalid_json", "not valid JSON.*line 1"),
        ("live-record", b"[1, 2]", "invalid_json", "must be a JSON object, got array"),
        ("live-caster", b"", "invalid_json", "empty"),
        ("rtc", b'{"MsgId": "m", "Contents": "not a list"}', "invalid_event", "Contents"),
        ("ims", b'{"EventType": "ProduceMediaComplete", "MessageBody": 5}', "invalid_event", "MessageBody"),
    ],
)
def test_signed_malformed_bodies_are_dead_lettered_with_the_reason(
    shim: Shim, store: redis.Redis, provider: str, body: bytes, code: str, reason: str
) -> None:
    """Authenticated (the signature is in the headers) but invalid: kept, and answered 200 so retries stop."""
    answer = shim.post(provider, body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["dead_lettered"] is True and answer.json()["events"] == []
    assert re.search(reason, answer.json()["detail"]), answer.json()["detail"]
    assert queued(store) == 0
    (entry,) = DeadLetterStore(store).list()
    assert entry.raw == body and entry.source == source_of(provider) and re.search(reason, entry.error or "")


def test_unsigned_malformed_bodies_are_400_with_the_reason(shim: Shim, store: redis.Redis) -> None:
    answer = shim.post("ims", b'{"EventType": "ProduceMediaComplete",', sign=False)
    assert answer.status_code == 401  # not authenticated: refused before the body is looked at
    tencent = shim.post("tencent", b"[1, 2]")  # Tencent's signature is in the body: unreadable, unverified
    assert tencent.status_code == 400 and tencent.json()["error"] == "invalid_json"
    assert "must be a JSON object, got array" in tencent.json()["detail"]
    assert store.dbsize() == 0


def test_wrong_content_type_is_415(shim: Shim, store: redis.Redis) -> None:
    answer = shim.post("ims", IMS, headers={"Content-Type": "text/plain"})
    assert answer.status_code == 415 and "application/json" in answer.json()["detail"]
    form = shim.post("ims", b"a=1", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415
    assert store.dbsize() == 0


def test_rtc_accepts_form_bodies(shim: Shim, store: redis.Redis) -> None:
    message = json.loads(RTC)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    single = str(httpx.QueryParams({"Message": json.dumps(message)})).encode()
    answer = shim.post("rtc", single, headers=form)
    assert answer.status_code == 200, answer.text
    assert [e["type"] for e in answer.json()["events"]] == ["rtc.UserEvent", "rtc.ChannelEvent"]
    flat = {
        key: json.dumps(value) if isinstance(value, list) else str(value) for key, value in message.items()
    }
    flat["MsgId"] = "another-message"
    answer = shim.post("rtc", str(httpx.QueryParams(flat)).encode(), headers=form)
    assert answer.status_code == 200, answer.text
    assert queued(store) == 4


def test_oversize_bodies_are_413_declared_or_streamed(shim: Shim, store: redis.Redis) -> None:
    big = json.dumps({"EventType": "ProduceMediaComplete", "pad": "x" * LIMIT}).encode()
    answer = shim.post("ims", big)
    assert answer.status_code == 413 and f"limit of {LIMIT} bytes" in answer.json()["detail"]

    def stream() -> Iterator[bytes]:  # chunked: no Content-Length to judge by
        for _ in range(64):
            yield b" " * 4096

    headers, _, _ = sign_request("ims", b"", shim.settings)
    answer = shim.client.post(ENDPOINTS["ims"], content=stream(), headers=headers)
    assert answer.status_code == 413
    assert store.dbsize() == 0


def test_methods_paths_and_operations_endpoints(shim: Shim) -> None:
    assert shim.client.get(ENDPOINTS["ims"]).status_code == 405
    missing = shim.client.post("/webhooks/vimeo", content=b"{}")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert shim.client.get("/healthz").json() == {"status": "ok"}
    assert shim.client.get("/readyz").json() == {"status": "ready"}
    assert shim.client.post("/healthz").status_code == 405
    spec = shim.client.get("/openapi.json").json()
    assert set(ENDPOINTS.values()) <= set(spec["paths"]) and {"/healthz", "/readyz", "/metrics"} <= set(
        spec["paths"]
    )
    metrics = shim.client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "ims_worker_shim_enqueue_seconds_bucket" in metrics.text


def test_request_id_is_echoed_and_the_access_log_holds_no_secret(shim: Shim, store: redis.Redis) -> None:
    lines = io.StringIO()
    shim.app.access_log = AccessLog(shim.settings, stream=lines)
    try:
        with capture_logs() as logs:
            good = shim.post("ims", IMS, headers={"X-Request-ID": "req-42"})
            bad = shim.post("ims", IMS, key="leaked-key-value")
            caster = shim.post("live-caster", CASTER, key="caster-new")
    finally:
        shim.app.access_log = AccessLog(shim.settings)
    assert good.headers["x-request-id"] == "req-42" and good.json()["request_id"] == "req-42"
    assert caster.status_code == 200
    entries = [json.loads(line) for line in lines.getvalue().splitlines()]
    assert {entry["event"] for entry in entries} == {"shim.request"} and len(entries) == 3
    ok = next(entry for entry in entries if entry["request_id"] == "req-42")
    assert ok["provider"] == "ims" and ok["status"] == 200 and ok["latency_ms"] > 0 and ok["timestamp"]
    assert ok["event_ids"] == [e["id"] for e in good.json()["events"]]
    refused = next(entry for entry in entries if entry["status"] == 401)
    assert refused["error"] == "bad_signature" and refused["request_id"] == bad.headers["x-request-id"]
    assert (
        next(entry for entry in entries if entry["provider"] == "live.caster")["path"]
        == ENDPOINTS["live.caster"]
    )
    text = lines.getvalue() + repr(logs) + bad.text
    for secret in (
        "ims-old",
        "ims-new",
        "leaked-key-value",
        "caster-new",
        bad.request.headers["X-ICE-SIGNATURE"],
    ):
        assert secret not in text


def test_redis_outage_is_answered_from_the_spool_and_the_retry_is_a_duplicate(
    shim: Shim, store: redis.Redis, redis_server: RedisServer
) -> None:
    """The spool's own cases are in test_shim_spool.py; here: the served app's outage path end to end."""
    redis_server.stop()
    try:
        answer = shim.post("ims", IMS)
        assert answer.status_code == 200 and answer.json()["spooled"] is True, answer.text
        assert shim.client.get("/readyz").json()["spool"] == "accepting"
    finally:
        redis_server.start()
    wait_until(lambda: queued(store) == 1, timeout=20)
    retry = shim.post("ims", IMS)
    assert retry.status_code == 200, retry.text
    assert retry.json()["events"][0]["duplicate"]
    assert queued(store) == 1
    assert shim.client.get("/readyz").json() == {"status": "ready"}


def test_each_sample_runs_its_handlers_exactly_once_through_a_real_celery_worker(
    shim: Shim, store: redis.Redis, redis_url: str
) -> None:
    away_from_receipt_bucket_edge()
    env = {"IMS_WORKER_BROKER_URL": redis_url, "IMS_WORKER_HANDLER_MODULES": "tests.plugins.recorder"}
    expected = len(SAMPLES) + 1  # the RTC sample carries two events

    def runs() -> dict[bytes, int]:
        return {key: int(store.get(key) or 0) for key in store.scan_iter("test:runs:record:*")}

    with running_worker(env) as worker:
        for path in SAMPLES:
            assert shim.post(path.parent.name, path.read_bytes()).status_code == 200, sample_id(path)
        try:
            wait_until(lambda: len(runs()) == expected and queued(store) == 0, timeout=30)
        except TimeoutError:
            pytest.fail(f"handlers ran for {len(runs())} of {expected} events:\n{worker.output()[-3000:]}")
        assert set(runs().values()) == {1}
        seen = [store.hgetall(key) for key in store.scan_iter("test:seen:*")]
        assert {entry[b"transport"] for entry in seen} == {b"http"}
        assert {entry[b"source"] for entry in seen} == {
            b"ims",
            b"live.record",
            b"live.caster",
            b"rtc",
            b"tencent",
        }

        for path in SAMPLES:  # the providers retry every delivery
            again = shim.post(path.parent.name, path.read_bytes())
            assert again.status_code == 200, sample_id(path)
            if path.parent.name != "tencent-css":
                assert all(e["duplicate"] for e in again.json()["events"]), sample_id(path)
        assert queued(store) == 0  # nothing was enqueued again...
        time.sleep(1.0)
        assert len(runs()) == expected and set(runs().values()) == {1}  # ...and nothing ran again


def test_concurrent_deliveries_of_one_event_enqueue_it_once(shim: Shim, store: redis.Redis) -> None:
    """Requests arriving together share a publish batch; the same event twice in it is still enqueued once."""
    headers, query, body = sign_request("ims", IMS, shim.settings)

    async def deliver_together() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=shim.base, timeout=10) as client:
            posts = [
                client.post(ENDPOINTS["ims"], content=body, headers=headers, params=query) for _ in range(16)
            ]
            return list(await asyncio.gather(*posts))

    answers = asyncio.run(deliver_together())
    assert {answer.status_code for answer in answers} == {200}
    flags = [answer.json()["events"][0]["duplicate"] for answer in answers]
    assert flags.count(False) == 1 and queued(store) == 1


def test_a_trailing_slash_reaches_the_endpoint_and_is_signed_as_sent(shim: Shim, store: redis.Redis) -> None:
    url = f"{shim.base}{ENDPOINTS['ims']}/"
    stamp = str(int(time.time()))
    digest = hashlib.md5(f"{url}|{stamp}|ims-new".encode()).hexdigest()
    headers = {"Content-Type": "application/json", "X-ICE-TIMESTAMP": stamp, "X-ICE-SIGNATURE": digest}
    answer = shim.client.post(f"{ENDPOINTS['ims']}/", content=IMS, headers=headers)
    assert answer.status_code == 200, answer.text
    assert queued(store) == 1
