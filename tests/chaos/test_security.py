"""Security checks against the real ``ims-worker shim`` process (logging at DEBUG, the most it ever says):

* forged, stale (outside the window), replayed (a captured good request sent again once the window passed)
  and missing signatures are rejected with 401 and the reason, for every provider, and none is enqueued;
* a hypothesis fuzzing run (random bodies, headers, paths, methods; half of it correctly signed) never gets a
  5xx, and the shim is still up afterwards;
* no secret (any key, any signature value computed) appears in any line the shim logged.

The scenarios (test_scenarios.py) make the same log check over every process of every scenario.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from tests.celery_worker import ALL_QUEUES
from tests.chaos.budget import Budget
from tests.chaos.logscan import scan
from tests.chaos.payloads import SAMPLES, unique_payload
from tests.chaos.stack import MAX_BODY_BYTES, Keys, Stack
from worker.shim import ENDPOINTS, sign_request
from worker.shim.auth import TENCENT_MAX_VALIDITY_SECONDS

pytestmark = pytest.mark.chaos

WINDOW = 2  # seconds: short, so that a replay can be tried once it has passed
REPLAYABLE = ("ims", "live.record", "rtc", "tencent")  # the caster's token carries no time


class ShimUnderTest:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.client = httpx.Client(base_url=stack.base_url, timeout=10)
        self.signatures: set[str] = set()

    def signed(self, source: str, body: bytes, *, key: str | None, now: float | None = None) -> Any:
        request = sign_request(source, body, key=key, public_url=self.stack.base_url, now=now)
        self.signatures.update(v for k, v in request.headers.items() if k.lower().endswith("signature"))
        self.signatures.update(request.query.values())
        if source == "tencent" and key is not None:
            with contextlib.suppress(ValueError, TypeError, KeyError):
                self.signatures.add(str(json.loads(request.body)["sign"]))
        return request

    def post(self, source: str, request: Any) -> httpx.Response:
        return self.client.post(
            ENDPOINTS[source], content=request.body, headers=request.headers, params=request.query
        )

    def enqueued(self) -> int:
        client = redis.Redis.from_url(self.stack.redis_url)
        try:
            return sum(int(client.llen(q)) for q in ALL_QUEUES)
        finally:
            client.close()

    def secrets(self) -> dict[str, str]:
        found = {f"key #{i}": v for i, v in enumerate(self.stack.keys.values())}
        return found | {f"signature #{i}": v for i, v in enumerate(sorted(self.signatures))}


@pytest.fixture
def shim(budget: Budget, tmp_path: Path) -> Iterator[ShimUnderTest]:
    keys = Keys.generate(budget.rng("security"))
    stack = Stack(tmp_path, keys, window=WINDOW, extra_env={"IMS_WORKER_LOG_LEVEL": "DEBUG"})
    stack.start(shim_only=True)
    under_test = ShimUnderTest(stack)
    try:
        yield under_test
    finally:
        under_test.client.close()
        stack.stop()
    stats, leaks = scan(stack.log_files(), under_test.secrets())
    assert leaks == [], leaks
    assert stats.uncaught == [], stats.uncaught
    assert stats.events["shim.internal_error"] == 0


def body_for(source: str, seq: int) -> bytes:
    return json.dumps(unique_payload(source, seq)).encode()


def test_forged_stale_and_missing_signatures_are_rejected(shim: ShimUnderTest) -> None:
    for seq, source in enumerate(ENDPOINTS):
        key = shim.stack.keys.by_source[source]
        body = body_for(source, 500 + seq)
        forged_code = "bad_token" if source == "live.caster" else "bad_signature"
        cases = {
            "forged": (shim.signed(source, body, key=f"not-{key}"), forged_code),
            "missing": (shim.signed(source, body, key=None), "missing"),
        }
        if source != "live.caster":
            cases["stale"] = (shim.signed(source, body, key=key, now=time.time() - WINDOW - 700), "stale")
        for case, (request, code) in cases.items():
            answer = shim.post(source, request)
            assert (answer.status_code, answer.json().get("error")) == (401, code), (
                source,
                case,
                answer.text,
            )
    assert shim.enqueued() == 0, "a rejected webhook was enqueued"


def test_a_captured_request_replayed_after_the_window_is_rejected(shim: ShimUnderTest) -> None:
    captured = {}
    for seq, source in enumerate(REPLAYABLE):
        # Tencent's t is an expiry (10 minutes ahead by default): capture one that is about to expire.
        now = time.time() - TENCENT_MAX_VALIDITY_SECONDS + 1 if source == "tencent" else None
        body = body_for(source, 600 + seq)
        request = shim.signed(source, body, key=shim.stack.keys.by_source[source], now=now)
        assert shim.post(source, request).status_code == 200
        captured[source] = request
    accepted = shim.enqueued()
    assert accepted == 5  # the RTC message carries two events
    time.sleep(WINDOW + 1.5)
    for source, request in captured.items():
        answer = shim.post(source, request)
        assert (answer.status_code, answer.json().get("error")) == (401, "stale"), (source, answer.text)
    assert shim.enqueued() == accepted


def fuzz_requests() -> st.SearchStrategy[dict[str, Any]]:
    # Header values as a client can send them (h11 refuses leading or trailing blanks).
    printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(str.strip)
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
        max_leaves=10,
    )
    return st.fixed_dictionaries(
        {
            "source": st.sampled_from(list(ENDPOINTS)),
            # Mostly the provider's own endpoint with POST: that is where the parsing and publishing are.
            "path": st.sampled_from([None] * 12 + ["/webhooks", "/webhooks/ims/x", "/", "/readyz"]),
            "method": st.sampled_from(["POST"] * 12 + ["GET", "PUT", "DELETE"]),
            "body": st.one_of(
                st.binary(max_size=300),
                json_values.map(lambda v: json.dumps(v).encode()),
                st.tuples(
                    st.integers(0, 10**6), st.dictionaries(st.text(max_size=12), json_values, max_size=3)
                ),
                st.just("oversize"),
            ),
            "content_type": st.sampled_from(
                [
                    "application/json",
                    "application/x-www-form-urlencoded",
                    "text/plain",
                    "",
                    "application/x+json",
                ]
            ),
            "sign": st.booleans(),
            "headers": st.dictionaries(
                st.sampled_from(
                    [
                        "X-ICE-TIMESTAMP",
                        "X-ICE-SIGNATURE",
                        "ALI-LIVE-TIMESTAMP",
                        "Ali-Rtc-Signature",
                        "Content-Length-Bogus",
                        "X-Request-Id",
                    ]
                ),
                printable,
                max_size=3,
            ),
            "query": st.dictionaries(st.sampled_from(["token", "t", "sign"]), printable, max_size=2),
        }
    )


def test_the_shim_survives_fuzzing_without_a_5xx(shim: ShimUnderTest, budget: Budget) -> None:
    statuses: dict[int, int] = {}

    @seed(budget.scenario_seed("fuzz"))
    @settings(
        max_examples=min(1000, budget.scale(150)),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(fuzz_requests())
    def one_request(case: dict[str, Any]) -> None:
        source, body = case["source"], case["body"]
        if body == "oversize":
            body = b"x" * (MAX_BODY_BYTES + 1)
        elif isinstance(body, tuple):  # a real sample with fields added or replaced
            sample = random.Random(body[0]).choice(SAMPLES[source])
            body = json.dumps({**sample, **body[1]}).encode()
        headers = dict(case["headers"])
        query = dict(case["query"])
        if case["sign"]:
            request = shim.signed(source, body, key=shim.stack.keys.by_source[source])
            headers.update(request.headers)
            query.update(request.query)
            body = request.body
        if case["content_type"]:
            headers["Content-Type"] = case["content_type"]
        path = case["path"] or ENDPOINTS[source]
        answer = shim.client.request(case["method"], path, content=body, headers=headers, params=query)
        statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
        assert answer.status_code < 500, (path, answer.status_code, answer.text)
        assert answer.headers["content-type"].startswith(("application/json", "text/plain")), answer.headers

    one_request()
    print(f"fuzz answers by status: {dict(sorted(statuses.items()))}")
    assert shim.stack.shim_ready(), "the shim is down after the fuzzing run"
    assert statuses.get(200, 0) > 0 and statuses.get(401, 0) > 0, statuses
