"""Alibaba Cloud Intelligent Media Services (IMS): callbacks over MNS or HTTP, one event per payload."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from worker.events.catalogue import IMS_ALIASES
from worker.events.identify import Item, known, type_name
from worker.events.ids import IdRules, iso_time
from worker.providers.builtin import catalogued, paths
from worker.providers.spec import AuthSpec, BusinessKey, ProviderSpec


def identify(obj: dict[str, Any]) -> list[Item]:
    name = type_name(obj, "EventType", "it names the IMS event type")
    return [Item(known("ims", f"ims.{IMS_ALIASES.get(name, name)}"), obj)]


def occurred_at(payload: dict[str, Any]) -> datetime | None:
    return iso_time(payload.get("EventTime"))


def _key(name: str, *more: str) -> BusinessKey:
    return BusinessKey(name, paths(f"MessageBody.{name}", *more, name))


PROVIDER = ProviderSpec(
    name="ims",
    title="Intelligent Media Services callbacks",
    path="/webhooks/ims",
    auth=AuthSpec(
        kind="md5-url",
        key_setting="ims_callback_key",
        timestamp_header="X-ICE-TIMESTAMP",
        signature_header="X-ICE-SIGNATURE",
        description='X-ICE-SIGNATURE = md5hex("{callback URL}|{X-ICE-TIMESTAMP}|{key}"), the callback URL '
        "as configured in the IMS console (IMS_WORKER_SHIM_PUBLIC_URL + path, plus the request's query "
        "string when the configured URL has one).",
    ),
    identify=identify,
    occurred_at=occurred_at,
    ids=IdRules(),
    types=catalogued("ims"),
    business_keys=(
        _key("MediaId"),
        _key("JobId", "MessageBody.jobId"),
        _key("ParentJobId"),
        _key("TaskId"),
        _key("ProjectId"),
        _key("TemplateId"),
    ),
    dedupe_ttl_seconds=7 * 86400,
    queue="ims",
    samples="ims",
    detect=lambda obj: "EventType" in obj and "MessageBody" in obj,
    detect_order=10,
    detect_fallback=lambda obj: "EventType" in obj,
)
