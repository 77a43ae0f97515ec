"""Answers the shim gives when the publisher misbehaves in ways a real Redis cannot be made to, in-process.

Only these unit-level tests use a stand-in publisher: a bug (an unexpected exception), a publish that never
confirms, a ping that hangs. Everything that a real Redis can show is in test_shim_http.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import pytest
from structlog.testing import capture_logs

from tests.conftest import SAMPLES_DIR
from worker.events import Event
from worker.settings import load_settings
from worker.shim import ENDPOINTS, create_app
from worker.shim.answers import PublishResultLike
from worker.shim.app import ShimApp
from worker.shim.types import Message

IMS = (SAMPLES_DIR / "ims" / "ProduceMediaComplete.json").read_bytes()


@dataclass(frozen=True)
class Result:
    event_id: str
    type: str
    enqueued: bool


@dataclass
class StandIn:
    """Publishes nowhere; ``failure`` or ``delay`` make it misbehave."""

    failure: Exception | None = None
    delay: float = 0.0
    ready: bool = True
    closed: bool = False
    seen: list[Event] = field(default_factory=list)

    async def publish(self, events: Sequence[Event]) -> Sequence[PublishResultLike]:
        await asyncio.sleep(self.delay)
        if self.failure is not None:
            raise self.failure
        self.seen += events
        return [Result(event.id, event.type, True) for event in events]

    async def ping(self) -> bool:
        await asyncio.sleep(self.delay)
        return self.ready

    async def aclose(self) -> None:
        self.closed = True


def app_with(publisher: StandIn, **overrides: object) -> ShimApp:
    # These tests are about the app's plumbing, not authentication: IMS is knowingly accepted unsigned.
    return create_app(load_settings(**{"shim_allow_unsigned": "ims", **overrides}), publisher)


async def call(app: ShimApp, method: str, path: str, body: bytes = b"") -> httpx.Response:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://shim.test"
    ) as client:
        return await client.request(method, path, content=body, headers={"Content-Type": "application/json"})


def request(app: ShimApp, method: str, path: str, body: bytes = b"") -> httpx.Response:
    return asyncio.run(call(app, method, path, body))


async def lifespan(app: ShimApp, messages: list[Message]) -> list[Message]:
    """Feed ``messages`` then a shutdown to the app's lifespan; return what it sent."""
    queue = [*messages, {"type": "lifespan.shutdown"}]
    sent: list[Message] = []

    async def receive() -> Message:
        return queue.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)
    return sent


def test_an_unexpected_error_is_a_500_with_the_request_id_and_logged() -> None:
    app = app_with(StandIn(failure=RuntimeError("bug in a lower layer")))
    with capture_logs() as logs:
        answer = request(app, "POST", ENDPOINTS["ims"], IMS)
    assert answer.status_code == 500
    body = answer.json()
    assert body["error"] == "internal_error" and body["request_id"] == answer.headers["x-request-id"]
    assert body["request_id"] in body["detail"] and "bug in a lower layer" not in answer.text
    logged = next(entry for entry in logs if entry["event"] == "shim.internal_error")
    assert logged["request_id"] == body["request_id"] and logged["exc_info"] is True


def test_a_publish_that_never_confirms_is_a_503_not_a_hung_request() -> None:
    app = app_with(StandIn(delay=5), shim_publish_timeout_seconds=0.05)
    answer = request(app, "POST", ENDPOINTS["ims"], IMS)
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert "did not" not in answer.json()["detail"]  # the client learns "retry", the log has the specifics


def test_readiness_follows_the_publishers_ping_without_a_spool() -> None:
    off = {"shim_spool_enabled": False}
    assert request(app_with(StandIn(ready=False), **off), "GET", "/readyz").status_code == 503
    assert request(app_with(StandIn(delay=5), **off), "GET", "/readyz").status_code == 503
    assert request(app_with(StandIn(), **off), "GET", "/readyz").status_code == 200


def test_with_a_spool_that_can_accept_the_shim_stays_ready_when_redis_is_out() -> None:
    answer = request(app_with(StandIn(ready=False)), "GET", "/readyz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ready", "redis": "unavailable", "spool": "accepting"}


def test_the_events_passed_on_carry_the_http_transport_and_request_id() -> None:
    publisher = StandIn()
    answer = request(app_with(publisher), "POST", ENDPOINTS["ims"], IMS)
    assert answer.status_code == 200
    (event,) = publisher.seen
    assert event.type == "ims.ProduceMediaComplete"
    assert event.transport.kind == "http" and event.transport.request_id == answer.json()["request_id"]


def test_only_armed_endpoints_are_served_and_the_start_line_lists_them() -> None:
    with capture_logs() as logs:
        app = app_with(StandIn(), shim_allow_unsigned="", ims_callback_key="s3cr3t", caster_token="ab" * 10)
        asyncio.run(lifespan(app, [{"type": "lifespan.startup"}]))
    started = next(entry for entry in logs if entry["event"] == "shim.started")
    assert started["endpoints"] == {"/webhooks/ims": "signed", "/webhooks/live/caster": "signed"}
    weak = [entry["detail"] for entry in logs if entry["event"] == "shim.auth.weak_key"]
    assert weak == [
        "IMS_WORKER_IMS_CALLBACK_KEY (key 1 of 1) is short (6 characters, 16 or more recommended)",
        "IMS_WORKER_CASTER_TOKEN (key 1 of 1) is low in variety (2 distinct characters)",
    ]
    assert "s3cr3t" not in repr(logs)
    for path in (ENDPOINTS["rtc"], ENDPOINTS["tencent"], ENDPOINTS["live.record"]):
        answer = request(app, "POST", path, b"{}")
        assert answer.status_code == 404 and answer.json()["error"] == "not_found"
    assert request(app, "POST", ENDPOINTS["ims"], IMS).status_code == 401


def test_an_unsigned_opt_in_is_shouted_at_start() -> None:
    with capture_logs() as logs:
        app = app_with(StandIn(), shim_allow_unsigned="ims,live.record", shim_allowed_networks="10.0.0.0/8")
        asyncio.run(lifespan(app, [{"type": "lifespan.startup"}]))
    shouted = {entry["provider"]: entry for entry in logs if entry["event"] == "shim.auth.UNSIGNED_ACCEPTED"}
    assert set(shouted) == {"ims", "live.record"} and shouted["ims"]["log_level"] == "warning"
    assert shouted["ims"]["networks"] == ["10.0.0.0/8"]
    started = next(entry for entry in logs if entry["event"] == "shim.started")
    assert started["endpoints"] == {
        "/webhooks/ims": "UNSIGNED ACCEPTED",
        "/webhooks/live/record": "UNSIGNED ACCEPTED",
    }


@pytest.mark.parametrize("owned", [True, False])
def test_lifespan_closes_only_a_publisher_it_made(owned: bool) -> None:
    publisher = StandIn()
    app = app_with(publisher)
    app._owns_publisher = owned  # what create_app(settings) without a publisher sets
    messages: list[Message] = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app({"type": "lifespan"}, receive, send))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert publisher.closed is owned


def test_in_console_mode_the_access_log_goes_through_structlog() -> None:
    app = app_with(StandIn(), log_format="console")
    with capture_logs() as logs:
        answer = request(app, "POST", ENDPOINTS["ims"], IMS)
    (entry,) = [entry for entry in logs if entry["event"] == "shim.request"]
    assert entry["request_id"] == answer.headers["x-request-id"] and entry["status"] == 200


def test_the_access_log_can_be_switched_off_or_levelled_away() -> None:
    for overrides in ({"shim_access_log": False}, {"log_level": "WARNING"}):
        app = app_with(StandIn(), log_format="console", **overrides)
        with capture_logs() as logs:
            request(app, "POST", ENDPOINTS["ims"], IMS)
        assert not [entry for entry in logs if entry["event"] == "shim.request"]
