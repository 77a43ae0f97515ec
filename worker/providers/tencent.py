"""Tencent Cloud CSS callbacks; relay events (``event_type`` 314) are typed, the rest kept as unknown."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from worker.errors import InvalidPayload
from worker.events.identify import Item, known, type_name
from worker.events.ids import IdRules, json_object, number
from worker.events.jsonfield import utc_from_epoch
from worker.providers.builtin import catalogued, paths
from worker.providers.spec import AuthSpec, BusinessKey, ProviderSpec

RELAY_EVENT_TYPE = 314


def _is_relay(value: Any) -> bool:
    # Documented as an int; accept "314" as well, since providers stringify numbers now and then.
    return not isinstance(value, bool) and str(value).strip() == str(RELAY_EVENT_TYPE)


def identify(obj: dict[str, Any]) -> list[Item]:
    if obj.get("event_type") is None:
        raise InvalidPayload("missing field event_type (it names the Tencent CSS callback kind)")
    if not _is_relay(obj["event_type"]):
        return [Item("unknown.tencent", obj)]
    name = type_name(obj, "callback_event", "it names the relay callback of event_type 314")
    return [Item(known("tencent", f"tencent.relay.{name}"), obj)]


def occurred_at(payload: dict[str, Any]) -> datetime | None:
    """``task_exit_time`` / ``task_start_time`` in ``msg`` (ms) when not 0."""
    msg = json_object(payload.get("msg"))
    stamp = number(msg.get("task_exit_time")) or number(msg.get("task_start_time"))
    return utc_from_epoch(stamp) if stamp else None


PROVIDER = ProviderSpec(
    name="tencent",
    title="Tencent Cloud CSS callbacks",
    path="/webhooks/tencent/css",
    auth=AuthSpec(
        kind="tencent-body",
        key_setting="tencent_callback_key",
        description='Body fields t (expiry, unix seconds) and sign = md5hex("{key}{t}"). Only t is signed, '
        "not the rest of the body: TLS is what protects the body.",
    ),
    identify=identify,
    occurred_at=occurred_at,
    # A retry may be signed anew: the per-delivery authentication fields do not change the id.
    ids=IdRules(per_delivery_fields=frozenset({"t", "sign"})),
    types=catalogued("tencent"),
    business_keys=(BusinessKey("TaskId", paths("task_id")), BusinessKey("stream", paths("stream_id"))),
    dedupe_ttl_seconds=86400,
    queue="tencent",
    samples="tencent-css",
    aliases=("tencent-css", "tencent/css"),
    detect=lambda obj: "event_type" in obj,
    detect_order=40,
    answer="tencent",
)
