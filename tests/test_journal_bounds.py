"""The journal's bounds hold against a real shim process and a real worker (issue 22, items 3 and 4).

- Count cap: with ``IMS_WORKER_JOURNAL_MAX_EVENTS=100`` and 300 signed IMS events (six business keys each),
  handled by a worker started after they were all received (lagging), 272 event blobs, 271 payloads and 1,800
  business-key keys used to remain: the trim left the keys of the events it dropped, and the lagging worker
  re-created blobs for events already trimmed. Every journal key now belongs to an event in the index.
- Identifiers: an RTC ``MsgId`` of 63 KB made 63 KB key names; one holding a newline wrote history under
  another event's id; a ``MediaId`` holding a newline forged a business-key entry that ``trace`` found.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import httpx
import pytest
import redis

from tests.celery_worker import running_worker, wait_until
from tests.conftest import SAMPLES_DIR
from tests.servers import free_port, wait_for_port
from worker import keyspace
from worker.shim import ENDPOINTS, sign_request

pytestmark = pytest.mark.integration

IMS_WORKER = str(Path(sys.executable).with_name("ims-worker"))
REPO_ROOT = Path(__file__).resolve().parent.parent
IMS_KEY = "ims-bounds-key-0123456789abcdef"
RTC_KEY = "rtc-bounds-key-0123456789abcdef"
CAP = 100
SENT = 300
KEYS = ("MediaId", "JobId", "ParentJobId", "TaskId", "ProjectId", "TemplateId")


def env_for(redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMS_WORKER_", "PROMETHEUS_MULTIPROC"))}
    env.update(IMS_WORKER_BROKER_URL=redis_url, IMS_WORKER_LOG_FORMAT="json", **extra)
    return env


@contextlib.contextmanager
def shim_process(redis_url: str, log: Path, **extra: str) -> Iterator[tuple[str, list[str]]]:
    """Output to a file: a pipe nobody reads fills after ~190 access-log lines and blocks the shim."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = env_for(
        redis_url,
        IMS_WORKER_IMS_CALLBACK_KEY=IMS_KEY,
        IMS_WORKER_RTC_APP_KEY=RTC_KEY,
        IMS_WORKER_SHIM_PUBLIC_URL=base,
        **extra,
    )
    args = [IMS_WORKER, "shim", "--port", str(port)]
    output: list[str] = []
    with log.open("wb") as sink:
        process = subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, timeout=30)
        yield base, output
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        output.extend(log.read_text(errors="replace").splitlines())


def post(
    client: httpx.Client, base: str, provider: str, payload: dict[str, object], key: str
) -> httpx.Response:
    headers, query, body = sign_request(provider, json.dumps(payload).encode(), key=key, public_url=base)
    return client.post(f"{base}{ENDPOINTS[provider]}", content=body, headers=headers, params=query)


def ims_event(**body: str) -> dict[str, object]:
    payload: dict[str, object] = json.loads((SAMPLES_DIR / "ims" / "ProduceMediaComplete.json").read_text())
    message = payload["MessageBody"]
    assert isinstance(message, dict)
    message.update(body)
    return payload


def handled(client: redis.Redis) -> int:
    stats = cast(dict[bytes, bytes], client.hgetall(keyspace.STATS))
    return int(sum(float(v) for k, v in stats.items() if k.startswith(b"handled|")))


def members(client: redis.Redis, key: str | bytes) -> list[str]:
    return [m.decode() for m in cast(list[bytes], client.zrange(key, 0, -1))]


def keys_like(client: redis.Redis, prefix: str) -> list[bytes]:
    return list(client.scan_iter(match=prefix + "*", count=1000))


def test_the_count_cap_bounds_every_journal_key_even_for_a_lagging_worker(
    redis_url: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    shim = shim_process(redis_url, tmp_path / "shim.log", IMS_WORKER_JOURNAL_MAX_EVENTS=str(CAP))
    with shim as (base, _), httpx.Client(timeout=30) as http:
        for _ in range(SENT):
            answer = post(http, base, "ims", ims_event(**{k: uuid.uuid4().hex for k in KEYS}), IMS_KEY)
            assert answer.status_code == 200, answer.text
    assert client.zcard(keyspace.JOURNAL_INDEX) == CAP
    # The worker starts only now: the 200 oldest events were trimmed before it got to them.
    with running_worker({"IMS_WORKER_BROKER_URL": redis_url, "IMS_WORKER_JOURNAL_MAX_EVENTS": str(CAP)}) as w:
        try:
            wait_until(lambda: handled(client) == SENT, timeout=120, interval=0.5)
        except TimeoutError:
            pytest.fail(f"handled {handled(client)} of {SENT}:\n{w.output()[-3000:]}")
    indexed = set(members(client, keyspace.JOURNAL_INDEX))
    blobs = keys_like(client, keyspace.JOURNAL_ENTRIES_PREFIX)
    payloads = keys_like(client, keyspace.JOURNAL_PAYLOAD_PREFIX)
    values = keys_like(client, keyspace.JOURNAL_VALUE_PREFIX)
    print(
        f"index {len(indexed)}, blobs {len(blobs)}, payloads {len(payloads)}, business-key keys {len(values)}"
    )
    assert len(indexed) == CAP
    assert {k.decode().removeprefix(keyspace.JOURNAL_ENTRIES_PREFIX) for k in blobs} <= indexed
    assert {k.decode().removeprefix(keyspace.JOURNAL_PAYLOAD_PREFIX) for k in payloads} <= indexed
    assert len(values) <= CAP * len(KEYS)
    for key in values:
        for member in members(client, key):
            assert member.partition("|")[2] in indexed, (key, member)
    client.close()


def test_payload_identifiers_are_encoded_before_they_name_keys_or_lines(
    redis_url: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    rtc: dict[str, object] = json.loads((SAMPLES_DIR / "rtc" / "eventsub.json").read_text())
    victim = {**rtc, "MsgId": "victim-msg"}
    with shim_process(redis_url, tmp_path / "shim.log") as (base, output), httpx.Client(timeout=30) as http:
        assert post(http, base, "rtc", victim, RTC_KEY).status_code == 200
        huge = post(http, base, "rtc", {**rtc, "MsgId": "m" * 63_000}, RTC_KEY)
        assert huge.status_code == 200, huge.text
        forged = post(http, base, "rtc", {**rtc, "MsgId": "x:0\nrtc:victim-msg"}, RTC_KEY)
        assert forged.status_code == 200, forged.text
        media = '{"media": "m-1"}\nTaskId=forged'
        assert post(http, base, "ims", ims_event(MediaId=media), IMS_KEY).status_code == 200
        with running_worker({"IMS_WORKER_BROKER_URL": redis_url}) as w:
            try:
                wait_until(lambda: handled(client) == 7, timeout=60, interval=0.5)  # 3 x 2 RTC items + 1
            except TimeoutError:
                pytest.fail(f"handled {handled(client)} of 7:\n{w.output()[-3000:]}")
    ids = [event["id"] for event in huge.json()["events"] + forged.json()["events"]]
    assert all(len(i) < 100 and "\n" not in i and i.startswith("rtc:sha256~") for i in ids), ids
    longest = max(len(k) for k in client.scan_iter(count=1000))
    assert longest < 200, f"a key name of {longest} bytes"
    # The victim's history is its own: two items, received once each.
    for index in (0, 1):
        entries = [
            json.loads(e) for e in client.lrange(keyspace.journal_entries(f"rtc:victim-msg:{index}"), 0, -1)
        ]
        assert [e["e"] for e in entries].count("received") == 1, entries
    # The shim's access log names the events by their short ids.
    assert max(len(line) for line in output) < 4096
    trace = subprocess.run(
        [IMS_WORKER, "trace", "TaskId=forged", "--json"],
        env=env_for(redis_url),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert trace.returncode == 1 and json.loads(trace.stdout)["events"] == [], trace.stdout  # nothing forged
    client.close()
