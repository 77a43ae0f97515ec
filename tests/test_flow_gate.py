"""Flow control in-process: option checks at registration, key lookup, and the gate against a real Redis."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest
import redis

from tests.flowutil import upload_event
from worker.errors import ConfigurationError
from worker.events import Event
from worker.execution.flow.gate import FREE, STALE, FlowGate, Permit
from worker.execution.flow.metrics import DeferralCollector, deferral_counts
from worker.execution.flow.options import FlowOptions, key_value, parse_rate
from worker.execution.policy import Failure, Held
from worker.execution.registry import REGISTRY, handler

pytestmark = pytest.mark.integration


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(redis_url)
    yield r
    r.close()


_made: list[FlowGate] = []


@pytest.fixture(autouse=True)
def _close_gates() -> Iterator[None]:
    yield
    while _made:
        _made.pop().close()  # stop their renewal threads before the test's Redis goes away


def make_gate(client: redis.Redis, lease: float = 30.0) -> FlowGate:
    gate = FlowGate(client, lease_seconds=lease, busy_retry_seconds=1.0, newest_ttl_seconds=3600)
    _made.append(gate)
    return gate


def permit(answer: Permit | Held | Failure) -> Permit:
    assert isinstance(answer, Permit), answer
    return answer


@pytest.mark.parametrize(
    ("text", "count", "period", "shown"),
    [("20/s", 20, 1.0, "20/s"), ("600/m", 600, 60.0, "600/m"), ("3 / hour", 3, 3600.0, "3/h")],
)
def test_rates_parse(text: str, count: int, period: float, shown: str) -> None:
    rate = parse_rate(text)
    assert (rate.count, rate.period, rate.text) == (count, period, shown)
    assert rate.interval_ms == pytest.approx(period * 1000 / count)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rate": "20 per second"}, "rate '20 per second' is not '<count>/<s|m|h>'"),
        ({"rate": "0/s"}, "count >= 1"),
        ({"concurrency": 0}, "concurrency=0 must be >= 1"),
        ({"concurrency": 2.5}, "must be an integer >= 1"),
        ({"key": "NoSuchField"}, "key='NoSuchField' names no field of the event types it subscribes to"),
        ({"key": "MessageBody.Nope"}, "names no field"),
        ({"key": ""}, "must be a field name or a callable"),
        ({"stale": "skip"}, "stale='skip' needs key="),
        ({"key": "MediaId", "stale": "drop"}, "the only choice is stale='skip'"),
    ],
)
def test_bad_options_fail_at_registration_naming_the_handler(
    options: dict[str, object], message: str
) -> None:
    def bad(event: Event) -> None: ...

    with pytest.raises(ConfigurationError, match=r"@handler option of tests\.test_flow_gate") as caught:
        handler("ims.FileUploadComplete", **options)(bad)  # type: ignore[arg-type]
    assert message in str(caught.value)
    assert all(s.func is not bad for s in REGISTRY.subscriptions)


def test_good_options_are_described_for_listings() -> None:
    def media(event: Event) -> str:
        return "x"

    def good(event: Event) -> None: ...

    def dotted(event: Event) -> None: ...

    handler("ims.*", key=media, rate="5/m", concurrency=2)(good)
    try:
        (sub,) = [s for s in REGISTRY.subscriptions if s.func is good]
        assert sub.describe() == {
            "name": "tests.test_flow_gate:test_good_options_are_described_for_listings.<locals>.good",
            "pattern": "ims.*",
            "key": "tests.test_flow_gate:test_good_options_are_described_for_listings.<locals>.media",
            "stale": None,
            "rate": "5/m",
            "concurrency": 2,
        }
        handler("ims.*", key="MessageBody.MediaId")(dotted)  # a dotted path that exists is accepted
    finally:
        REGISTRY._subscriptions = [s for s in REGISTRY.subscriptions if s.func not in (good, dotted)]
        REGISTRY._cache.clear()


def test_key_values_come_from_the_data_then_the_raw_payload() -> None:
    event = upload_event("FileUploadComplete", "media-7", 1)
    assert key_value("MediaId", event) == "media-7"
    assert key_value("MessageBody.MediaId", event) == "media-7"
    assert key_value("AppId", event) == "app-1"
    assert key_value("UserId", event) == "1"
    assert key_value("Nope", event) is None
    assert key_value(lambda e: e.source, event) == "ims"
    assert key_value(lambda e: None, event) is None


def test_no_options_never_touch_redis(client: redis.Redis) -> None:
    gate = make_gate(client)
    assert gate.enter("h", FlowOptions(), upload_event("FileUploadComplete", "m", 1), "t1") is FREE
    assert client.dbsize() == 0


def test_one_run_per_key_and_the_lock_is_a_lease_kept_alive(client: redis.Redis) -> None:
    gate = make_gate(client, lease=1.5)  # renewed every 0.5 s
    keyed = FlowOptions(key="MediaId")
    first = permit(gate.enter("h", keyed, upload_event("FileUploadComplete", "m1", 1), "task-1"))
    busy = gate.enter("h", keyed, upload_event("FileUploadComplete", "m1", 2), "task-2")
    assert isinstance(busy, Held) and busy.reason == "key busy" and busy.countdown
    assert 0.5 <= busy.countdown <= 1.5
    other = permit(gate.enter("h", keyed, upload_event("FileUploadComplete", "m2", 3), "task-3"))
    with other:
        pass
    with first:
        time.sleep(2.5)  # longer than the lease: only the renewals keep it
        assert isinstance(gate.enter("h", keyed, upload_event("FileUploadComplete", "m1", 4), "t4"), Held)
    permit(gate.enter("h", keyed, upload_event("FileUploadComplete", "m1", 2), "task-2")).__exit__(
        None, None, None
    )
    assert deferral_counts(client) == {("h", "key busy"): 2}


def test_a_dead_holders_key_frees_itself_after_the_lease(client: redis.Redis) -> None:
    keyed = FlowOptions(key="MediaId")
    dead = make_gate(client, lease=1.0)
    permit(dead.enter("h", keyed, upload_event("FileUploadComplete", "m", 1), "dead"))
    dead.close()  # no release, no renewal: as if the worker had died
    gate = make_gate(client)
    assert isinstance(gate.enter("h", keyed, upload_event("FileUploadComplete", "m", 2), "t2"), Held)
    time.sleep(1.1)
    permit(gate.enter("h", keyed, upload_event("FileUploadComplete", "m", 2), "t2"))


def test_stale_events_are_skipped_once_a_newer_one_completed(client: redis.Redis) -> None:
    gate = make_gate(client)
    options = FlowOptions(key="MediaId", stale="skip")
    with permit(gate.enter("h", options, upload_event("UploadByURLComplete", "m", 1, seconds=50), "t1")):
        pass
    older = upload_event("UploadByURLComplete", "m", 2, seconds=40)
    assert gate.enter("h", options, older, "t2") is STALE
    same_time = upload_event("UploadByURLComplete", "m", 3, seconds=50)
    with permit(gate.enter("h", options, same_time, "t3")):
        pass
    other_key = upload_event("UploadByURLComplete", "m2", 4, seconds=10)
    with permit(gate.enter("h", options, other_key, "t4")):
        pass
    # a failed run does not count as the newest completed
    with (
        pytest.raises(RuntimeError),
        permit(gate.enter("h", options, upload_event("UploadByURLComplete", "m", 5, seconds=90), "t5")),
    ):
        raise RuntimeError("handler failed")
    with permit(gate.enter("h", options, upload_event("UploadByURLComplete", "m", 6, seconds=60), "t6")):
        pass
    assert gate.enter("h", options, upload_event("UploadByURLComplete", "m", 7, seconds=55), "t7") is STALE
    assert deferral_counts(client) == {("h", "stale"): 2}


def test_concurrency_slots_and_a_dead_holders_slot_expires(client: redis.Redis) -> None:
    options = FlowOptions(concurrency=2)
    dead = make_gate(client, lease=1.0)
    permit(dead.enter("h", options, upload_event("FileUploadComplete", "a", 1), "dead"))
    dead.close()
    gate = make_gate(client)
    second = permit(gate.enter("h", options, upload_event("FileUploadComplete", "b", 2), "t2"))
    full = gate.enter("h", options, upload_event("FileUploadComplete", "c", 3), "t3")
    assert isinstance(full, Held) and full.reason == "concurrency limit"
    time.sleep(1.1)
    third = permit(gate.enter("h", options, upload_event("FileUploadComplete", "c", 3), "t3"))
    assert isinstance(gate.enter("h", options, upload_event("FileUploadComplete", "d", 4), "t4"), Held)
    with second:
        pass
    with permit(gate.enter("h", options, upload_event("FileUploadComplete", "d", 4), "t4")):
        pass
    with third:
        pass
    assert client.zcard("ims-worker:flow:slots:h") == 0


def test_the_rate_limiter_spaces_starts_and_books_the_waiters(client: redis.Redis) -> None:
    gate = make_gate(client)
    options = FlowOptions(rate=parse_rate("10/s"))  # one start per 100 ms
    event = upload_event("ImageUploadComplete", "m", 1)
    starts: list[float] = []
    booked: dict[str, float] = {}
    began = time.monotonic()
    pending = [f"t{i}" for i in range(12)]
    while pending:
        token = pending.pop(0)
        answer = gate.enter("h", options, event, token)
        if isinstance(answer, Permit):
            starts.append(time.monotonic() - began)
            continue
        assert isinstance(answer, Held) and answer.reason == "rate limited" and answer.countdown
        if token not in booked:  # first refusal: told when to come back, each waiter a different time
            booked[token] = time.monotonic() - began + answer.countdown
        time.sleep(0.005)
        pending.append(token)
    assert len(starts) == 12
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.095, gaps  # strict spacing (Redis clock), whatever the callers do
    assert starts[-1] < 1.6  # and no time lost to the waiting: ~1.1 s for 12 starts at 10/s
    # the waiters were given distinct start times, one interval apart
    assert sorted(booked.values()) == pytest.approx([0.1 * i for i in range(1, 12)], abs=0.03)
    counts = deferral_counts(client)
    assert counts[("h", "rate limited")] >= 11


def test_deferrals_are_exported_as_a_prometheus_counter(client: redis.Redis) -> None:
    client.hset("ims-worker:flow:deferrals", mapping={"mod:h|key busy": 3, "mod:h|rate limited": 2})
    (family,) = DeferralCollector(client).collect()
    assert family.name == "ims_worker_flow_deferrals"
    assert {(s.labels["reason"], s.value) for s in family.samples if s.name.endswith("_total")} == {
        ("key busy", 3.0),
        ("rate limited", 2.0),
    }
