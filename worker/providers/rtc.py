"""ApsaraVideo Live RTC event subscription: one message carries ``Contents``, one event per item."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from worker.errors import InvalidPayload
from worker.events.envelope import EventData
from worker.events.identify import Item, known, type_name
from worker.events.ids import IdRules, number
from worker.events.jsonfield import utc_from_epoch
from worker.events.rtc import RtcMessage
from worker.providers.builtin import catalogued, paths
from worker.providers.spec import AuthSpec, BusinessKey, ProviderSpec


class RtcSubscription(RtcMessage):
    """The request body: the message envelope and its list of events."""

    Event: str | None = None  # type: ignore[assignment]  # on the items, not the envelope
    Contents: list[EventData] = Field(min_length=1)


def identify(obj: dict[str, Any]) -> list[Item]:
    contents = obj.get("Contents")
    if contents is None:
        raise InvalidPayload("missing field Contents (the list of RTC events)")
    if not isinstance(contents, list):
        raise InvalidPayload("field Contents must be a list of RTC events")
    if not contents:
        raise InvalidPayload("field Contents is empty: the message carries no RTC event")
    envelope = {key: value for key, value in obj.items() if key != "Contents"}
    items = []
    for index, content in enumerate(contents):
        where = f"Contents[{index}]."
        if not isinstance(content, dict):
            raise InvalidPayload(f"{where[:-1]} must be an object")
        name = type_name(content, "Event", "it names the RTC event type", where)
        items.append(Item(known("rtc", f"rtc.{name}"), {**envelope, **content}, index))
    return items


def occurred_at(payload: dict[str, Any]) -> datetime | None:
    """The item's ``Timestamp``, else the message's ``MsgTimestamp``."""
    item = payload.get(str(payload.get("Event")))
    stamp = number(item.get("Timestamp")) if isinstance(item, dict) else None
    return utc_from_epoch(stamp if stamp is not None else number(payload.get("MsgTimestamp")))


def _msg_id(payload: dict[str, Any]) -> str | None:
    msg_id = payload.get("MsgId")
    if isinstance(msg_id, str | int) and not isinstance(msg_id, bool) and str(msg_id):
        return str(msg_id)
    return None


PROVIDER = ProviderSpec(
    name="rtc",
    title="ApsaraVideo Live RTC event subscription",
    path="/webhooks/rtc",
    auth=AuthSpec(
        kind="md5-host",
        key_setting="rtc_app_key",
        timestamp_header="Ali-Rtc-Timestamp",
        signature_header="Ali-Rtc-Signature",
        description='Ali-Rtc-Signature = md5hex("{callback host}|{Ali-Rtc-Timestamp}|{AppKey}").',
    ),
    identify=identify,
    occurred_at=occurred_at,
    ids=IdRules(native_id=_msg_id, indexed=True),
    types=catalogued("rtc"),
    business_keys=(
        BusinessKey("ChannelId", paths("ChannelID", "ChannelEvent.ChannelId", "ChannelId")),
        BusinessKey("UserId", paths("UserEvent.UserId")),
        BusinessKey("SessionId", paths("UserEvent.SessionId")),
    ),
    dedupe_ttl_seconds=86400,
    queue="rtc",
    samples="rtc",
    detect=lambda obj: "Contents" in obj,
    detect_order=30,
    accept_form=True,
    request_model=RtcSubscription,
)
