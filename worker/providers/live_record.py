"""ApsaraVideo Live recording callbacks: status events (``event``) and recording files (``uri``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from worker.errors import InvalidPayload
from worker.events.identify import Item, known, type_name
from worker.events.ids import IdRules, number
from worker.events.jsonfield import utc_from_epoch
from worker.providers.builtin import catalogued, paths
from worker.providers.spec import AuthSpec, BusinessKey, ProviderSpec


def identify(obj: dict[str, Any]) -> list[Item]:
    if "event" in obj:
        name = type_name(obj, "event", "it names the recording status event")
        return [Item(known("live.record", f"live.record.{name}"), obj)]
    if "uri" in obj:  # a recording file: the one callback without "event"
        return [Item("live.record.file_created", obj)]
    raise InvalidPayload("missing field event (recording status) or uri (recording file): neither is present")


def occurred_at(payload: dict[str, Any]) -> datetime | None:
    """A file's ``stop_time`` (when it was closed), else ``start_time``."""
    stop = number(payload.get("stop_time"))
    return utc_from_epoch(stop if stop is not None else number(payload.get("start_time")))


PROVIDER = ProviderSpec(
    name="live.record",
    title="ApsaraVideo Live recording callbacks",
    path="/webhooks/live/record",
    auth=AuthSpec(
        kind="md5-host",
        key_setting="live_auth_key",
        timestamp_header="ALI-LIVE-TIMESTAMP",
        signature_header="ALI-LIVE-SIGNATURE",
        description='ALI-LIVE-SIGNATURE = md5hex("{callback host}|{ALI-LIVE-TIMESTAMP}|{key}"). During a key '
        "rotation list both keys: streams pushed before the change keep the old one.",
    ),
    identify=identify,
    occurred_at=occurred_at,
    ids=IdRules(),
    types=catalogued("live.record"),
    business_keys=(
        BusinessKey("domain", paths("domain")),
        BusinessKey("app", paths("app")),
        BusinessKey("stream", paths("stream")),
    ),
    dedupe_ttl_seconds=3600,
    queue="live",
    samples="live-record",
    aliases=("live-record", "live/record"),
    detect=lambda obj: {"domain", "app", "stream"} <= obj.keys(),
    detect_order=50,
)
