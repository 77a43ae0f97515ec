"""Payload -> events through the provider's own rules; which provider a payload looks like."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from worker.errors import InvalidPayload
from worker.events.envelope import Event, Transport
from worker.events.fanout import DEFAULT_MAX_EVENTS
from worker.events.normalize import normalize_with
from worker.events.parse import load_object
from worker.providers.registry import _PROVIDERS, providers


def normalize(
    source: str,
    raw: bytes | str | Mapping[str, Any],
    *,
    transport: Transport | None = None,
    received_at: datetime | None = None,
    parsed: bool = False,
    max_events: int | None = DEFAULT_MAX_EVENTS,
) -> list[Event]:
    """The events in ``raw`` (JSON text or a decoded mapping) as sent by ``source``.

    IMS, production studio, recording and Tencent payloads give one event; an RTC message gives one per item
    of ``Contents``. An unrecognised type gives an ``unknown.<source>`` event. ``received_at`` defaults to
    now (UTC); pass the original one when replaying, it is part of some ids. ``parsed=True``: ``raw`` is a
    dict the caller has just decoded from JSON and hands over (it is used as is, not parsed again).
    More than ``max_events`` events raise ``TooManyEvents``. Raises ``InvalidPayload`` (and nothing else) with
    the reason.
    """
    spec = _PROVIDERS.get(source)
    if spec is None:
        raise InvalidPayload(f"unknown source {source!r}: expected one of {', '.join(_PROVIDERS)}")
    return normalize_with(
        source,
        raw,
        identify=spec.identify,
        occurred_at=spec.occurred_at,
        ids=spec.ids,
        transport=transport,
        received_at=received_at,
        parsed=parsed,
        max_events=max_events,
    )


def detect_source(raw: bytes | str | Mapping[str, Any]) -> str:
    """The source that sends payloads shaped like ``raw`` (for tools: webhooks and queues know their source).

    IMS has EventType and MessageBody; the production studio EventType with EventMessage or CasterId; RTC has
    Contents; Tencent has event_type; live recording has domain, app and stream.
    """
    obj = load_object(raw)
    ordered = sorted(providers(), key=lambda spec: spec.detect_order)
    for spec in ordered:
        if spec.detect is not None and spec.detect(obj):
            return spec.name
    for spec in ordered:
        if spec.detect_fallback is not None and spec.detect_fallback(obj):
            return spec.name
    raise InvalidPayload(
        "cannot tell the source: expected EventType+MessageBody (ims), EventType+EventMessage (live.caster), "
        "Contents (rtc), event_type (tencent) or domain+app+stream (live.record); pass the source explicitly"
    )
