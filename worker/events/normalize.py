"""``normalize_with()``: one raw payload + its provider's rules -> the typed, normalized events it carries.

The one parsing path for both entries (MNS consumer and HTTP shim); the per-provider rules (identifier, event
time, id rules) come from the provider definition (``worker.providers.normalize`` looks them up). It returns
events or raises ``InvalidPayload`` with a message that says what is wrong (which field); it never raises
anything else, so callers can dead-letter or answer 400 on exactly that exception. How ids and times are
derived is documented in ``worker.events.ids``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from pydantic import ValidationError

from worker.errors import InvalidPayload
from worker.events.catalogue import CATALOGUE
from worker.events.envelope import Event, Transport, mark_data_from_raw
from worker.events.fanout import DEFAULT_MAX_EVENTS, check_fanout, derivable, own_raw
from worker.events.identify import Identifier, Item
from worker.events.ids import IdRules, event_id
from worker.events.jsonfield import summarize
from worker.events.parse import load_object

_HTTP = Transport(kind="http")
OccurredAt = Callable[[dict[str, Any]], datetime | None]


def normalize_with(
    source: str,
    raw: bytes | str | Mapping[str, Any],
    *,
    identify: Identifier,
    occurred_at: OccurredAt,
    ids: IdRules,
    transport: Transport | None = None,
    received_at: datetime | None = None,
    parsed: bool = False,
    max_events: int | None = DEFAULT_MAX_EVENTS,
) -> list[Event]:
    """The events in ``raw`` (JSON text or a decoded mapping) as sent by ``source``.

    ``parsed=True`` says ``raw`` is a dict just decoded from JSON (the shim's case): it is used as is
    instead of being re-encoded and parsed again. ``received_at`` defaults to now (UTC); pass the original
    one when replaying, it is part of some ids. More than ``max_events`` events (``None``: no bound) raise
    ``TooManyEvents``, an ``InvalidPayload`` (``worker.events.fanout``).
    """
    try:
        obj = raw if parsed and isinstance(raw, dict) else load_object(raw)
        when_received = _utc(received_at)
        items = identify(obj)
        check_fanout(source, obj, len(items), max_events)
        rules = _Rules(source, transport or _HTTP, when_received, occurred_at, ids, len(items))
        return [_event(rules, obj, item) for item in items]
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


class _Rules(NamedTuple):
    source: str
    transport: Transport
    received_at: datetime
    occurred_at: OccurredAt
    ids: IdRules
    events: int  # how many this payload carries


def _event(rules: _Rules, obj: dict[str, Any], item: Item) -> Event:
    source, transport, received_at = rules.source, rules.transport, rules.received_at
    spec = CATALOGUE[item.type]
    try:
        data = spec.model.model_validate(item.payload)
    except ValidationError as exc:
        raise InvalidPayload(f"{item.type}: {summarize(exc)}") from None
    when = rules.occurred_at(item.payload)
    # Multi-event payloads (RTC) get ids from the whole message plus the position; others from the payload.
    ident = event_id(source, obj, received_at=received_at, when=when, index=item.index, rules=rules.ids)
    raw = own_raw(obj, item.index, rules.events)
    # Everything here is already validated: skip Event's validation on this hot path.
    event = Event.model_construct(
        type=item.type,
        id=ident,
        source=source,
        occurred_at=when,
        received_at=received_at,
        data=data,
        raw=raw,
        transport=transport,
        index=item.index,
    )
    # ``data`` can be derived again from ``raw``: a task message may leave it out
    # (``worker.delivery.taskmessage``).
    if derivable(raw, item.payload):
        mark_data_from_raw(event)
    return event
