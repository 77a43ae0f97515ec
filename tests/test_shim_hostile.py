"""Hostile and bad-day inputs against a real ``ims-worker shim`` process at its default settings.

Each case is one an independent review saw go wrong (issue 22), checked as the provider or an attacker sees
it: the HTTP answer (status, JSON reason, Retry-After) and the process's log (no traceback, no 500).
- 60 query fields on the token-checked caster endpoint answered 500 (``parse_qs``'s max fields).
- ``X-Forwarded-For`` sent on several lines: only the last line was counted.
- Redis full (``OOM``) between two readings of the memory guard answered 500.
- Tencent's ``t`` is an expiry: the code accepted it up to 300 s after it passed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from tests.conftest import SAMPLES_DIR
from tests.servers import RedisServer, free_port, wait_for_port
from worker.shim import ENDPOINTS, sign_request

pytestmark = pytest.mark.integration

IMS_WORKER = str(Path(sys.executable).with_name("ims-worker"))
REPO_ROOT = Path(__file__).resolve().parent.parent
TENCENT_KEY = "tencent-hostile-key-0123456789abcdef"
CASTER_TOKEN = "caster-hostile-token-0123456789abcdef"
TENCENT = (SAMPLES_DIR / "tencent-css" / "TaskStart.json").read_bytes()
CASTER = next((SAMPLES_DIR / "live-caster").glob("*.json")).read_bytes()
IMS = (SAMPLES_DIR / "ims" / "ProduceMediaComplete.json").read_bytes()


@dataclass
class Shim:
    base: str
    redis_url: str
    output: list[str]


@pytest.fixture(scope="module")
def shim(redis_server: RedisServer) -> Iterator[Shim]:
    if redis_server.process is None:
        redis_server.start()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMS_WORKER_", "PROMETHEUS_MULTIPROC"))}
    env.update(
        IMS_WORKER_BROKER_URL=redis_server.url,
        IMS_WORKER_TENCENT_CALLBACK_KEY=TENCENT_KEY,
        IMS_WORKER_CASTER_TOKEN=CASTER_TOKEN,
        # IMS unsigned from the internal network only, behind two proxies of the operator's.
        IMS_WORKER_SHIM_ALLOW_UNSIGNED="ims",
        IMS_WORKER_SHIM_ALLOWED_NETWORKS="10.0.0.0/8",
        IMS_WORKER_SHIM_TRUSTED_PROXY_HOPS="2",
        IMS_WORKER_SHIM_PUBLIC_URL=f"http://127.0.0.1:{port}",
        IMS_WORKER_LOG_FORMAT="json",
        # The answers asserted here are a shim's without its spool (with it, a signed request that Redis
        # refuses is spooled and answered 200: tests/test_shim_spool.py).
        IMS_WORKER_SHIM_SPOOL_ENABLED="false",
    )
    args = [IMS_WORKER, "shim", "--port", str(port)]
    process = subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output: list[str] = []
    try:
        wait_for_port(port, timeout=30)
        yield Shim(f"http://127.0.0.1:{port}", redis_server.url, output)
    finally:
        process.send_signal(signal.SIGTERM)
        text, _ = process.communicate(timeout=30)
        output.extend(text.decode(errors="replace").splitlines())
    assert TENCENT_KEY not in "\n".join(output) and CASTER_TOKEN not in "\n".join(output)
    for line in output:
        record = json.loads(line)
        assert "Traceback" not in line and record.get("event") != "shim.internal_error", line


def test_too_many_query_fields_is_a_400_not_a_500(shim: Shim) -> None:
    query = "&".join(f"a{n}=1" for n in range(60)) + f"&token={CASTER_TOKEN}"
    answer = httpx.post(f"{shim.base}{ENDPOINTS['live.caster']}?{query}", content=CASTER, timeout=10)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "too_many_query_fields"


def forwarded(shim: Shim, lines: list[str]) -> httpx.Response:
    headers = [("Content-Type", "application/json"), *(("X-Forwarded-For", line) for line in lines)]
    return httpx.post(f"{shim.base}{ENDPOINTS['ims']}", content=IMS, headers=headers, timeout=10)


def test_forwarded_for_lines_are_joined_in_order_before_counting_hops(shim: Shim) -> None:
    # Each of the two trusted proxies adds its own line (HAProxy's ``option forwardfor`` does): the client is
    # the second entry from the right of all lines. Counting the last line alone found no client at all.
    internal = forwarded(shim, ["10.0.0.5", "10.0.0.2"])
    assert internal.status_code == 200, internal.text
    # A client's own claim on a line before the proxies' is left of the trusted entries and never counted.
    outside = forwarded(shim, ["10.0.0.66", "203.0.113.7", "10.0.0.2"])
    assert outside.status_code == 403, outside.text
    assert outside.json()["error"] == "network_not_allowed"


def post_tencent(shim: Shim, now: float) -> httpx.Response:
    headers, _, body = sign_request("tencent", TENCENT, key=TENCENT_KEY, now=now)
    return httpx.post(f"{shim.base}{ENDPOINTS['tencent']}", content=body, headers=headers, timeout=10)


def test_tencent_t_is_refused_once_it_has_passed(shim: Shim) -> None:
    # sign_request writes t = now + 600 (Tencent's validity): t passed 1 s ago <=> signed 601 s ago.
    passed = post_tencent(shim, time.time() - 601)
    assert passed.status_code == 401, passed.text
    assert passed.json()["error"] == "stale"
    assert post_tencent(shim, time.time() - 590).status_code == 200


def test_redis_out_of_memory_is_a_503_with_retry_after(shim: Shim) -> None:
    client = redis.Redis.from_url(shim.redis_url)
    seen_oom = False
    try:
        # The memory guard reads INFO once a second; Redis filling up inside that second met a 500. Prime the
        # guard with a reading of "room left", fill Redis, and post at once (again if a second passed).
        for _ in range(10):
            client.config_set("maxmemory", "0")
            assert post_tencent(shim, time.time()).status_code == 200
            used = int(client.info("memory")["used_memory"])
            client.config_set("maxmemory", str(used // 2))
            answer = post_tencent(shim, time.time())
            assert answer.status_code == 503, answer.text
            assert answer.headers["retry-after"] == "30", answer.text
            assert answer.json()["error"] == "redis_memory_high"
            if "refused the write" in answer.json()["detail"]:
                seen_oom = True
                break
            time.sleep(1.1)  # the guard's reading came first: let it expire and try again
    finally:
        client.config_set("maxmemory", "0")
        client.close()
    assert seen_oom, "Redis never refused a write inside the guard's window"
