"""ApsaraVideo Live production studio (caster) callbacks, one event per payload."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from worker.events.identify import Item, known, type_name
from worker.events.ids import IdRules, number
from worker.events.jsonfield import utc_from_epoch
from worker.providers.builtin import catalogued, paths
from worker.providers.spec import AuthSpec, BusinessKey, ProviderSpec


def identify(obj: dict[str, Any]) -> list[Item]:
    name = type_name(obj, "EventType", "it names the production studio callback")
    return [Item(known("live.caster", f"live.caster.{name}"), obj)]


def occurred_at(payload: dict[str, Any]) -> datetime | None:
    return utc_from_epoch(number(payload.get("ResponseTime")))


def _has_request_id(payload: dict[str, Any]) -> bool:
    message = payload.get("EventMessage")
    return isinstance(message, dict) and bool(message.get("RequestId"))


PROVIDER = ProviderSpec(
    name="live.caster",
    title="ApsaraVideo Live production studio callbacks",
    path="/webhooks/live/caster",
    auth=AuthSpec(
        kind="token",
        key_setting="caster_token",
        description="?token= in the callback URL equal to a configured token (the provider documents no "
        "signature).",
    ),
    identify=identify,
    occurred_at=occurred_at,
    ids=IdRules(unique=_has_request_id),
    types=catalogued("live.caster"),
    business_keys=(BusinessKey("CasterId", paths("CasterId")),),
    dedupe_ttl_seconds=86400,
    queue="live",
    samples="live-caster",
    aliases=("live-caster", "live/caster"),
    detect=lambda obj: "EventType" in obj and ("EventMessage" in obj or "CasterId" in obj),
    detect_order=20,
)
