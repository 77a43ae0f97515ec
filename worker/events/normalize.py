"""``normalize()``: one raw provider payload -> the typed, normalized events it carries.

The one parsing path for both entries (MNS consumer and HTTP shim). It returns events or raises
``InvalidPayload`` with a message that says what is wrong (which field); it never raises anything else, so
callers can dead-letter or answer 400 on exactly that exception. How ids and times are derived, per source,
is documented in ``worker.events.ids``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from worker.errors import InvalidPayload
from worker.events.catalogue import CATALOGUE
from worker.events.envelope import Event, Transport
from worker.events.fanout import DEFAULT_MAX_EVENTS, check_fanout, own_raw
from worker.events.identify import Item, identify
from worker.events.ids import event_id, occurred_at
from worker.events.jsonfield import summarize
from worker.events.parse import load_object

_HTTP = Transport(kind="http")


def normalize(
    source: str,
    raw: bytes | str | Mapping[str, Any],
    *,
    transport: Transport | None = None,
    received_at: datetime | None = None,
    max_events: int | None = DEFAULT_MAX_EVENTS,
) -> list[Event]:
    """The events in ``raw`` (JSON text or a decoded mapping) as sent by ``source`` (one of ``SOURCES``).

    IMS, production studio, recording and Tencent payloads give one event; an RTC message gives one per item
    of ``Contents``. An unrecognised type gives an ``unknown.<source>`` event. ``received_at`` defaults to
    now (UTC); pass the original one when replaying, it is part of some ids. More than ``max_events`` events
    (``None``: no bound) raise ``TooManyEvents``, an ``InvalidPayload``.
    """
    try:
        return _normalize(source, raw, transport or _HTTP, _utc(received_at), max_events)
    except InvalidPayload:
        raise
    except RecursionError:
        raise InvalidPayload("payload is nested too deeply to process") from None
    except Exception as exc:  # the contract: events or InvalidPayload, never anything else
        raise InvalidPayload(f"payload could not be normalized: {type(exc).__name__}: {exc}") from exc


def _utc(value: datetime | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _normalize(
    source: str,
    raw: bytes | str | Mapping[str, Any],
    transport: Transport,
    received_at: datetime,
    max_events: int | None,
) -> list[Event]:
    obj = load_object(raw)
    items = identify(source, obj)
    check_fanout(source, obj, len(items), max_events)
    return [_event(source, obj, item, len(items), (transport, received_at)) for item in items]


def _event(
    source: str, obj: dict[str, Any], item: Item, count: int, arrival: tuple[Transport, datetime]
) -> Event:
    transport, received_at = arrival
    spec = CATALOGUE[item.type]
    try:
        data = spec.model.model_validate(item.payload)
    except ValidationError as exc:
        raise InvalidPayload(f"{item.type}: {summarize(exc)}") from None
    when = occurred_at(source, item.payload)
    # RTC ids come from the whole message (MsgId + position); other sources have one item, the payload.
    ident = event_id(source, obj, received_at=received_at, when=when, index=item.index)
    # Everything here is already validated: skip Event's validation on this hot path.
    return Event.model_construct(
        type=item.type,
        id=ident,
        source=source,
        occurred_at=when,
        received_at=received_at,
        data=data,
        raw=own_raw(obj, item.index, count),
        transport=transport,
        index=item.index,
    )
