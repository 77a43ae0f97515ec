"""Fail-closed webhooks against a real shim (uvicorn on loopback) and a real Redis.

Each case checks the HTTP answer and what reached Redis: the queues (enqueued events) and the dead letters.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import SAMPLES_DIR, SPOOL_DIR_VAR
from tests.servers import free_port
from tests.shim_server import serving
from worker.delivery.deadletter import DeadLetterStore
from worker.settings import Settings, load_settings
from worker.shim import ENDPOINTS, create_app, sign_request

pytestmark = pytest.mark.integration

QUEUES = ("ims", "live", "rtc", "tencent", "unknown")
IMS = (SAMPLES_DIR / "ims" / "ProduceMediaComplete.json").read_bytes()
RECORD = (SAMPLES_DIR / "live-record" / "file_created.json").read_bytes()
TENCENT = (SAMPLES_DIR / "tencent-css" / "TaskStart.json").read_bytes()
IMS_KEY = "ims-key-6f0c2b7e91d4a358"


def enqueued(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return sum(int(client.llen(queue)) for queue in QUEUES)
    finally:
        client.close()


def dead_letters(redis_url: str) -> list[Any]:
    store = DeadLetterStore(redis_url)
    try:
        return store.list()
    finally:
        store.close()


@contextmanager
def shim(redis_url: str, **overrides: Any) -> Iterator[tuple[httpx.Client, Settings]]:
    port = free_port()
    values: dict[str, Any] = {
        "broker_url": redis_url,
        "shim_public_url": f"http://127.0.0.1:{port}",
        "shim_access_log": False,
        **overrides,
    }
    settings = load_settings(**values)
    with serving(create_app(settings), port) as base, httpx.Client(base_url=base, timeout=10) as client:
        yield client, settings


def metric(client: httpx.Client, name: str, **labels: str) -> float:
    """The value of one sample of ``/metrics`` (0 when that label set was never counted)."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def post(
    client: httpx.Client, source: str, body: bytes, settings: Settings | None, **kwargs: Any
) -> httpx.Response:
    headers = kwargs.pop("headers", {})
    signed_headers: dict[str, str] = {"Content-Type": "application/json"}
    query: dict[str, str] = {}
    if settings is not None:
        signed_headers, query, body = sign_request(source, body, settings, **kwargs)
    return client.post(ENDPOINTS[source], content=body, headers={**signed_headers, **headers}, params=query)


# --- refusing to start --------------------------------------------------------------------------------------


def shim_exit(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IMS_WORKER_") or k == SPOOL_DIR_VAR}
    argv = [sys.executable, "-m", "worker.cli", "shim", "--port", str(free_port())]
    return subprocess.run(argv, env={**clean, **env}, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({}, "no webhook endpoint is armed"),
        ({"IMS_WORKER_IMS_CALLBACK_KEY": " , "}, "IMS_WORKER_IMS_CALLBACK_KEY (key 1 of 2) is empty"),
        (
            {"IMS_WORKER_LIVE_AUTH_KEY": "real-key-one-2x9q,"},
            "IMS_WORKER_LIVE_AUTH_KEY (key 2 of 2) is empty",
        ),
        ({"IMS_WORKER_CASTER_TOKEN": "Change-Me"}, "IMS_WORKER_CASTER_TOKEN (key 1 of 1) is a placeholder"),
        ({"IMS_WORKER_RTC_APP_KEY": "good-key-8c1e5a2f,XXX"}, "is a placeholder ('XXX')"),
        ({"IMS_WORKER_SHIM_ALLOW_UNSIGNED": "vimeo"}, "names unknown provider(s) vimeo"),
        (
            {"IMS_WORKER_SHIM_ALLOW_UNSIGNED": "ims", "IMS_WORKER_SHIM_ALLOWED_NETWORKS": "10.0.0.0/33"},
            "IMS_WORKER_SHIM_ALLOWED_NETWORKS",
        ),
    ],
)
def test_the_shim_refuses_to_start_with_one_clear_line(env: dict[str, str], says: str) -> None:
    done = shim_exit(env)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ims-worker: configuration error:") and says in lines[0]


# --- armed endpoints ----------------------------------------------------------------------------------------


def test_only_armed_endpoints_answer_and_nothing_unsigned_is_accepted(redis_url: str) -> None:
    with shim(redis_url, ims_callback_key=IMS_KEY) as (client, settings):
        for source in ("live.record", "live.caster", "rtc", "tencent"):
            answer = client.post(
                ENDPOINTS[source], content=b"{}", headers={"Content-Type": "application/json"}
            )
            assert answer.status_code == 404 and answer.json()["error"] == "not_found", source
        assert post(client, "ims", IMS, None).status_code == 401
        assert set(client.get("/openapi.json").json()["paths"]) & set(ENDPOINTS.values()) == {"/webhooks/ims"}
        assert enqueued(redis_url) == 0
        assert post(client, "ims", IMS, settings).status_code == 200
        assert enqueued(redis_url) == 1 and dead_letters(redis_url) == []


def test_ims_signs_the_configured_url_with_or_without_a_query_string(redis_url: str) -> None:
    with shim(redis_url, ims_callback_key=IMS_KEY) as (client, settings):
        assert post(client, "ims", IMS, settings).status_code == 200
        # Console URL https://.../webhooks/ims?tenant=a&v=2: IMS calls it and signs all of it.
        body = IMS.replace(b"Success", b"Success ")  # another event (another id)
        with_query = post(client, "ims", body, settings, callback_query="tenant=a&v=2")
        assert with_query.status_code == 200, with_query.text
        signed_bare = sign_request("ims", body, settings)
        sent = client.post(
            ENDPOINTS["ims"], content=body, headers=signed_bare.headers, params={"tenant": "a", "v": "2"}
        )
        assert sent.status_code == 401 and sent.json()["error"] == "bad_signature"
        assert enqueued(redis_url) == 2


def test_live_record_accepts_both_keys_of_a_rotation(redis_url: str) -> None:
    with shim(redis_url, live_auth_key="old-key-1b9d3f7a, new-key-5e2c8a0d") as (client, settings):
        for key in ("old-key-1b9d3f7a", "new-key-5e2c8a0d"):
            body = RECORD.replace(b"liveStream0001", key.encode())
            assert post(client, "live.record", body, settings, key=key).status_code == 200
        assert post(client, "live.record", RECORD, settings, key="retired-key-0000").status_code == 401
        assert enqueued(redis_url) == 2


# --- the unsigned opt-in ------------------------------------------------------------------------------------


def test_unsigned_opt_in_is_per_provider_counted_and_network_bound(redis_url: str) -> None:
    overrides = {"shim_allow_unsigned": "live.record", "ims_callback_key": IMS_KEY}
    with shim(redis_url, **overrides) as (client, _):
        assert post(client, "live.record", RECORD, None).status_code == 200
        assert post(client, "ims", IMS, None).status_code == 401  # only the provider named
        assert (
            metric(
                client, "ims_worker_shim_unsigned_requests_total", provider="live.record", outcome="accepted"
            )
            == 1
        )
        assert enqueued(redis_url) == 1
    with shim(redis_url, shim_allow_unsigned="live.record", shim_allowed_networks="10.0.0.0/8") as (
        client,
        _,
    ):
        refused = post(client, "live.record", RECORD.replace(b"69.403", b"70"), None)
        assert refused.status_code == 403 and refused.json()["error"] == "network_not_allowed"
        # X-Forwarded-For is not trusted unless the operator says a proxy of theirs sets it.
        spoofed = post(client, "live.record", RECORD, None, headers={"X-Forwarded-For": "10.1.2.3"})
        assert spoofed.status_code == 403
        assert (
            metric(
                client, "ims_worker_shim_unsigned_requests_total", provider="live.record", outcome="refused"
            )
            == 2
        )
    hops = {
        "shim_allow_unsigned": "live.record",
        "shim_allowed_networks": "10.0.0.0/8",
        "shim_trusted_proxy_hops": 1,
    }
    with shim(redis_url, **hops) as (client, _):
        body = RECORD.replace(b"69.403", b"71")
        via_proxy = post(client, "live.record", body, None, headers={"X-Forwarded-For": "10.1.2.3"})
        assert via_proxy.status_code == 200
        # The client's own claim sits left of what our proxy appended: the proxy's entry decides.
        claimed = post(client, "live.record", body, None, headers={"X-Forwarded-For": "10.1.2.3, 192.0.2.7"})
        assert claimed.status_code == 403
    assert enqueued(redis_url) == 2 and dead_letters(redis_url) == []


# --- authenticated but invalid: dead-lettered, never dropped ------------------------------------------------


def test_authenticated_but_invalid_is_dead_lettered_once_and_answered_200(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    invalid = json.dumps({"UserId": 1, "MessageBody": {"MediaId": "m-1"}}).encode()  # no EventType
    with shim(redis_url, ims_callback_key=IMS_KEY, tencent_callback_key="tencent-key-4a7c0e93") as (
        client,
        settings,
    ):
        answers = [
            post(client, "ims", invalid, settings, headers={"X-Request-Id": f"r-{n}"}) for n in range(3)
        ]
        assert [a.status_code for a in answers] == [200, 200, 200]  # IMS retries: each answered, one kept
        assert all(a.json()["dead_lettered"] is True and a.json()["events"] == [] for a in answers)
        broken = post(client, "ims", b'{"EventType": "ProduceMediaComplete",', settings)
        assert broken.status_code == 200 and broken.json()["dead_lettered"] is True
        tencent = post(
            client, "tencent", json.dumps({"stream_id": "s-1"}).encode(), settings
        )  # no event_type
        assert tencent.status_code == 200 and tencent.json() == {"code": 0, "dead_lettered": True}
        # Unauthenticated junk: 4xx and kept nowhere.
        assert post(client, "ims", invalid, None).status_code == 401
        assert post(client, "tencent", b"not json", None).status_code == 400
        assert post(client, "tencent", json.dumps({"stream_id": "s-2"}).encode(), None).status_code == 401
        assert metric(client, "ims_worker_shim_dead_lettered_total", provider="ims", outcome="new") == 2
        assert metric(client, "ims_worker_shim_dead_lettered_total", provider="ims", outcome="repeat") == 2
        assert metric(client, "ims_worker_shim_dead_lettered_total", provider="tencent", outcome="new") == 1
    assert enqueued(redis_url) == 0
    letters = dead_letters(redis_url)
    assert [(e.source, e.reason) for e in letters] == [
        ("ims", "invalid_request"),
        ("ims", "invalid_request"),
        ("tencent", "invalid_request"),
    ]
    first = letters[0]
    assert first.raw == invalid and "EventType" in (first.error or "")
    assert first.transport == {"kind": "http", "request_id": "r-0"}
    assert letters[1].raw == b'{"EventType": "ProduceMediaComplete",' and "not valid JSON" in (
        letters[1].error or ""
    )
    assert json.loads(letters[2].raw)["stream_id"] == "s-1" and "sign" in json.loads(letters[2].raw)
    monkeypatch.setenv("IMS_WORKER_BROKER_URL", redis_url)
    monkeypatch.delenv("IMS_WORKER_REDIS_URL", raising=False)
    from worker.cli import main  # noqa: PLC0415 - the CLI reads the environment set just above

    capsys.readouterr()  # the shim's own log lines so far
    assert main(["dlq", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["count"] == 3
    assert [row["source"] for row in listed["entries"]] == ["ims", "ims", "tencent"]
    assert listed["entries"][0]["transport"]["request_id"] == "r-0"
