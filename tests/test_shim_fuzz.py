"""Hypothesis against the running shim: whatever arrives, the answer is a JSON 2xx/4xx, never 5xx or a crash.

The endpoints come from the served ``/openapi.json``. Bodies are random JSON, provider samples with fields
replaced or removed, and raw bytes; half the requests are correctly signed (so the body reaches parsing,
``normalize`` and the real publisher), the rest carry random authentication headers and query strings.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.conftest import SAMPLES_DIR
from tests.servers import RedisServer, free_port
from tests.shim_server import serving
from worker.settings import Settings, load_settings
from worker.shim import create_app, sign_request
from worker.shim.providers import ENDPOINTS

pytestmark = pytest.mark.integration

SOURCE_BY_PATH = {path: source for source, path in ENDPOINTS.items()}
SAMPLE_DIRS = {"ims": "ims", "live.record": "live-record", "live.caster": "live-caster", "rtc": "rtc"}
SAMPLE_DIRS["tencent"] = "tencent-css"
SAMPLES: dict[str, list[Any]] = {
    source: [json.loads(p.read_bytes()) for p in sorted((SAMPLES_DIR / folder).glob("*.json"))]
    for source, folder in SAMPLE_DIRS.items()
}
ANSWERS = {200, 400, 401, 404, 405, 413, 415}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def leaf_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [prefix] + [p for k, v in value.items() for p in leaf_paths(v, (*prefix, k))]
    if isinstance(value, list):
        return [prefix] + [p for i, v in enumerate(value) for p in leaf_paths(v, (*prefix, i))]
    return [prefix]


@st.composite
def mutated_sample(draw: st.DrawFn, source: str) -> bytes:
    """A sample of ``source`` with 0-3 values anywhere in it replaced or removed: mostly valid, often odd."""
    sample = json.loads(json.dumps(draw(st.sampled_from(SAMPLES[source]))))
    paths = [p for p in leaf_paths(sample) if p]
    for path in draw(st.lists(st.sampled_from(paths), max_size=3, unique=True)):
        parent = sample
        try:
            for step in path[:-1]:
                parent = parent[step]
            if isinstance(parent, dict) and draw(st.booleans()):
                del parent[path[-1]]
            else:
                parent[path[-1]] = draw(json_values)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this path's parent
    return json.dumps(sample).encode()


def bodies(source: str) -> st.SearchStrategy[bytes]:
    return st.one_of(
        mutated_sample(source),
        mutated_sample(source),
        st.dictionaries(st.text(max_size=12), json_values, max_size=6).map(
            lambda obj: json.dumps(obj).encode()
        ),
        json_values.map(lambda value: json.dumps(value).encode()),
        st.binary(max_size=300),
    )


header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(
    str.strip
)
auth_headers = st.dictionaries(
    st.sampled_from(
        [
            *("X-ICE-TIMESTAMP", "X-ICE-SIGNATURE", "ALI-LIVE-TIMESTAMP", "ALI-LIVE-SIGNATURE"),
            *("Ali-Rtc-Timestamp", "Ali-Rtc-Signature", "X-Request-ID", "Content-Length"),
        ]
    ),
    header_text,
    max_size=3,
)
# Mostly JSON, so that signed bodies get past the Content-Type check and reach normalize and Redis.
content_types = st.sampled_from(
    ["application/json"] * 6
    + ["application/x-www-form-urlencoded", "text/plain", "", "application/json; x=y"]
)


@pytest.fixture(scope="module")
def target(redis_server: RedisServer) -> Iterator[tuple[httpx.Client, Settings, list[str]]]:
    port = free_port()
    config = load_settings(
        broker_url=redis_server.url,
        shim_public_url=f"http://127.0.0.1:{port}",
        ims_callback_key="k1,k2",
        live_auth_key="k1",
        rtc_app_key="k1",
        tencent_callback_key="k1",
        caster_token="k1",
        shim_access_log=False,
    )
    with serving(create_app(config), port) as base, httpx.Client(base_url=base, timeout=10) as client:
        spec = client.get("/openapi.json").json()
        yield client, config, sorted(spec["paths"])


def check(answer: httpx.Response) -> None:
    assert answer.status_code in ANSWERS, (answer.status_code, answer.text)
    event(f"{answer.request.method} -> {answer.status_code}")  # --hypothesis-show-statistics shows the spread
    if answer.request.method != "HEAD" and answer.headers.get("content-type", "").startswith(
        "application/json"
    ):
        answer.json()


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(sorted(SOURCE_BY_PATH)),
    data=st.data(),
    signed=st.booleans(),
    content_type=content_types,
    extra=auth_headers,
    token=st.none() | header_text,
)
def test_webhooks_never_answer_5xx(
    target: tuple[httpx.Client, Settings, list[str]],
    redis_url: str,
    path: str,
    data: st.DataObject,
    signed: bool,
    content_type: str,
    extra: dict[str, str],
    token: str | None,
) -> None:
    client, config, _ = target
    source = SOURCE_BY_PATH[path]
    body = data.draw(bodies(source))
    if signed:
        headers, query, body = sign_request(source, body, config, content_type=content_type)
    else:
        headers = {"Content-Type": content_type, **extra}
        query = {"token": token} if token is not None else {}
    headers = {name: value for name, value in headers.items() if name.lower() != "content-length"}
    check(client.post(path, content=body, headers=headers, params=query))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]), data=st.data())
def test_every_described_path_and_method_answers_cleanly(
    target: tuple[httpx.Client, Settings, list[str]], method: str, data: st.DataObject
) -> None:
    client, _, paths = target
    path = data.draw(st.sampled_from([*paths, "/", "/webhooks", "/openapi.json"]))
    check(client.request(method, path, content=data.draw(st.binary(max_size=50))))


def test_fuzzing_reached_the_publisher(
    target: tuple[httpx.Client, Settings, list[str]], redis_url: str
) -> None:
    """The fuzz run is only worth something if signed, valid bodies get through: check one does."""
    client, config, _ = target
    body = json.dumps(SAMPLES["ims"][0]).encode()
    headers, query, body = sign_request("ims", body, config)
    assert client.post(ENDPOINTS["ims"], content=body, headers=headers, params=query).status_code == 200
    assert redis.Redis.from_url(redis_url).dbsize() > 0
