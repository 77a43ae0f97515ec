"""A sixth provider defined in this one module, served by a real shim and handled by a real Celery worker.

Nothing else in the repository names ``acme``: the module registers its ``ProviderSpec`` (and the handler of
its event type) at import; the shim and the worker load it through ``IMS_WORKER_PROVIDER_MODULES``, the way an
operator adds a provider.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis

from tests.celery_worker import running_worker, wait_until
from tests.servers import RedisServer, free_port
from tests.shim_server import serving
from worker import Event, handler
from worker.events import EventData
from worker.events.identify import Item, known, type_name
from worker.events.ids import IdRules
from worker.providers import AuthSpec, BusinessKey, ProviderSpec, business_keys, register
from worker.settings import Settings
from worker.shim import create_app, sign_request

pytestmark = pytest.mark.integration

MODULE = __name__
KEY = "acme-webhook-key-4d1f9a7c"


class OrderShipped(EventData):
    OrderId: str
    ShippedAt: datetime


def _identify(obj: dict[str, Any]) -> list[Item]:
    return [Item(known("acme", f"acme.{type_name(obj, 'Kind', 'it names the acme event')}"), obj)]


def _when(payload: dict[str, Any]) -> datetime | None:
    value = payload.get("ShippedAt")
    return datetime.fromisoformat(value).astimezone(UTC) if isinstance(value, str) else None


PROVIDER = register(
    ProviderSpec(
        name="acme",
        title="Acme shipping callbacks",
        path="/webhooks/acme",
        auth=AuthSpec(
            kind="md5-host",
            timestamp_header="X-Acme-Timestamp",
            signature_header="X-Acme-Signature",
            description='X-Acme-Signature = md5hex("{callback host}|{X-Acme-Timestamp}|{key}")',
        ),
        identify=_identify,
        occurred_at=_when,
        ids=IdRules(),
        types={"acme.OrderShipped": (OrderShipped, "An order left the warehouse.")},
        business_keys=(BusinessKey("OrderId", (("OrderId",),)),),
        dedupe_ttl_seconds=600,
        queue="acme",
    )
)


@handler("acme.OrderShipped")
def shipped(event: Event) -> None:
    assert isinstance(event.data, OrderShipped)  # typed in the worker too
    client = redis.Redis.from_url(Settings().effective_redis_url)
    client.hset(f"test:acme:{event.id}", "order", event.data.OrderId)
    for name, value in business_keys(event).items():
        client.hset(f"test:acme:{event.id}", name, value)
    client.close()


@pytest.fixture
def stack(redis_server: RedisServer) -> Iterator[tuple[str, Settings]]:
    port = free_port()
    env = {
        "IMS_WORKER_BROKER_URL": redis_server.url,
        "IMS_WORKER_PROVIDER_MODULES": MODULE,
        "IMS_WORKER_HANDLER_MODULES": MODULE,
        "IMS_WORKER_PROVIDER_KEYS": json.dumps({"acme": KEY}),
    }
    settings = Settings(
        broker_url=redis_server.url,
        provider_modules=[MODULE],
        provider_keys={"acme": KEY},
        shim_public_url=f"http://127.0.0.1:{port}",
        shim_access_log=False,
    )
    with running_worker(env, queues=("acme",)), serving(create_app(settings), port) as base:
        yield base, settings


def test_an_extra_provider_is_served_authenticated_routed_and_handled(
    stack: tuple[str, Settings], redis_server: RedisServer
) -> None:
    base, settings = stack
    body = json.dumps(
        {"Kind": "OrderShipped", "OrderId": "o-42", "ShippedAt": "2026-01-02T03:04:05Z"}
    ).encode()
    with httpx.Client(base_url=base, timeout=10) as client:
        unsigned = client.post("/webhooks/acme", content=body, headers={"Content-Type": "application/json"})
        assert unsigned.status_code == 401 and unsigned.json()["error"] == "missing"
        wrong = sign_request("acme", body, settings, key="not-the-key", now=time.time())
        assert client.post("/webhooks/acme", content=wrong.body, headers=wrong.headers).status_code == 401
        signed = sign_request("acme", body, settings)
        answer = client.post("/webhooks/acme", content=signed.body, headers=signed.headers)
        assert answer.status_code == 200, answer.text
        (accepted,) = answer.json()["events"]
        assert accepted["type"] == "acme.OrderShipped" and accepted["id"].startswith("acme:")
        spec = client.get("/openapi.json").json()
        assert "/webhooks/acme" in spec["paths"] and "OrderShipped" in spec["components"]["schemas"]
    r = redis.Redis.from_url(redis_server.url)
    try:
        wait_until(lambda: r.exists(f"test:acme:{accepted['id']}"), timeout=20)
        assert r.hgetall(f"test:acme:{accepted['id']}") == {b"order": b"o-42", b"OrderId": b"o-42"}
        assert 0 < r.ttl(f"ims-worker:dedupe:{accepted['id']}") <= 600  # the provider's own dedupe TTL
    finally:
        r.close()
