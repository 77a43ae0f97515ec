"""Which event type(s) a payload is, per source, and which source a payload came from.

A payload that lacks the fields naming its type is rejected with ``InvalidPayload`` saying which field; a
payload that names a type we do not know becomes ``unknown.<source>`` (never dropped).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from worker.errors import InvalidPayload
from worker.events.catalogue import CATALOGUE, IMS_ALIASES, SOURCES
from worker.events.parse import load_object

TENCENT_RELAY_EVENT_TYPE = 314


@dataclass(frozen=True)
class Item:
    """One event found in a payload: its normalized type, the object its model validates, its position."""

    type: str
    payload: dict[str, Any]
    index: int = 0


def _known(source: str, event_type: str) -> str:
    return event_type if event_type in CATALOGUE else f"unknown.{source}"


def _name(obj: Mapping[str, Any], field: str, why: str, where: str = "") -> str:
    value = obj.get(field)
    if value is None:
        raise InvalidPayload(f"missing field {where}{field} ({why})")
    if not isinstance(value, str) or not value.strip():
        raise InvalidPayload(f"field {where}{field} must be a non-empty string ({why})")
    return value


def _ims(obj: dict[str, Any]) -> list[Item]:
    name = _name(obj, "EventType", "it names the IMS event type")
    return [Item(_known("ims", f"ims.{IMS_ALIASES.get(name, name)}"), obj)]


def _caster(obj: dict[str, Any]) -> list[Item]:
    name = _name(obj, "EventType", "it names the production studio callback")
    return [Item(_known("live.caster", f"live.caster.{name}"), obj)]


def _record(obj: dict[str, Any]) -> list[Item]:
    if "event" in obj:
        name = _name(obj, "event", "it names the recording status event")
        return [Item(_known("live.record", f"live.record.{name}"), obj)]
    if "uri" in obj:  # a recording file: the one callback without "event"
        return [Item("live.record.file_created", obj)]
    raise InvalidPayload("missing field event (recording status) or uri (recording file): neither is present")


def _tencent(obj: dict[str, Any]) -> list[Item]:
    if obj.get("event_type") is None:
        raise InvalidPayload("missing field event_type (it names the Tencent CSS callback kind)")
    if not _is_relay(obj["event_type"]):
        return [Item("unknown.tencent", obj)]
    name = _name(obj, "callback_event", "it names the relay callback of event_type 314")
    return [Item(_known("tencent", f"tencent.relay.{name}"), obj)]


def _is_relay(value: Any) -> bool:
    # Documented as an int; accept "314" as well, since providers stringify numbers now and then.
    return not isinstance(value, bool) and str(value).strip() == str(TENCENT_RELAY_EVENT_TYPE)


def _rtc(obj: dict[str, Any]) -> list[Item]:
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
        name = _name(content, "Event", "it names the RTC event type", where)
        items.append(Item(_known("rtc", f"rtc.{name}"), {**envelope, **content}, index))
    return items


IDENTIFIERS: dict[str, Callable[[dict[str, Any]], list[Item]]] = {
    "ims": _ims,
    "live.caster": _caster,
    "live.record": _record,
    "rtc": _rtc,
    "tencent": _tencent,
}


def identify(source: str, obj: dict[str, Any]) -> list[Item]:
    """The events in ``obj`` as sent by ``source``; ``InvalidPayload`` if the type fields are missing."""
    identifier = IDENTIFIERS.get(source)
    if identifier is None:
        raise InvalidPayload(f"unknown source {source!r}: expected one of {', '.join(SOURCES)}")
    return identifier(obj)


def detect_source(raw: bytes | str | Mapping[str, Any]) -> str:
    """The source that sends payloads shaped like ``raw`` (for tools: webhooks and queues know their source).

    IMS has EventType and MessageBody; the production studio EventType with EventMessage or CasterId; RTC has
    Contents; Tencent has event_type; live recording has domain, app and stream.
    """
    obj = load_object(raw)
    if "EventType" in obj and "MessageBody" in obj:
        return "ims"
    if "EventType" in obj and ("EventMessage" in obj or "CasterId" in obj):
        return "live.caster"
    if "Contents" in obj:
        return "rtc"
    if "event_type" in obj:
        return "tencent"
    if {"domain", "app", "stream"} <= obj.keys():
        return "live.record"
    if "EventType" in obj:
        return "ims"
    raise InvalidPayload(
        "cannot tell the source: expected EventType+MessageBody (ims), EventType+EventMessage (live.caster), "
        "Contents (rtc), event_type (tencent) or domain+app+stream (live.record); pass the source explicitly"
    )
