"""Stable event ids, and the time helpers providers use to read an event's time.

The per-source rules below are declared by each provider definition (``worker.providers.<name>``) as an
``IdRules`` and an ``occurred_at`` function; this module applies them. Event id, per source (the same
on every redelivery of the same provider event, by MNS or by HTTP):

- ``rtc``: ``rtc:<MsgId>:<index of the item in Contents>``; without a MsgId, as below plus ``:<index>``. A
  MsgId that is not short plain ASCII (``worker.keyspace.part``: at most 128 characters, no space, newline,
  ``|`` or control character) stands in the id as ``sha256~<hex>`` of itself: the id becomes part of Redis key
  names and line-oriented records (a 63 KB MsgId made 63 KB keys; one with a newline wrote history under
  another event's id). The same MsgId always gives the same id, so redeliveries still deduplicate.
- every other source: ``<source>:<digest>``, the digest being the first 128 bits of the SHA-256 of the
  canonical payload (sorted keys, compact JSON), so formatting on the wire does not matter. Tencent's
  per-delivery authentication fields ``t`` and ``sign`` are left out, since a retry may be signed anew.

Payloads that carry neither a time of their own nor a unique id (live recording ``record_started`` says only
domain/app/stream/event; production studio runtime errors and carousel switches; Tencent relay events whose
times are 0) would make tomorrow's genuine event a duplicate of today's. For those the digest also covers the
time of receipt, bucketed to ``RECEIPT_BUCKET_SECONDS`` (10 minutes, longer than the ApsaraVideo Live retry
schedule of 1+2+5+10+60+120+300 s). The trade-off is explicit: a retry that crosses a bucket boundary gets a
new id (a duplicate, which handlers absorb: delivery is at least once), and two genuine identical events in
the same ten minutes are one. Replays must pass the original ``received_at`` to keep these ids.

``occurred_at`` (UTC): IMS ``EventTime``; RTC the item's ``Timestamp``, else ``MsgTimestamp``; live recording
files ``stop_time`` (when the file was closed), else ``start_time``; production studio ``ResponseTime`` (ms);
Tencent relay ``task_start_time`` / ``task_exit_time`` in ``msg`` (ms) when not 0; otherwise None.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from worker.events.parse import canonical
from worker.keyspace import part

RECEIPT_BUCKET_SECONDS = 600


@dataclass(frozen=True)
class IdRules:
    """How a provider's events get their ids (see the module docstring).

    ``per_delivery_fields``: fields that differ between deliveries of one event (left out of the digest).
    ``native_id``: the provider's own message id, if any (``<source>:<id>:<index>``).
    ``unique``: whether a payload carries an id of its own (then no receipt bucket is needed).
    ``indexed``: one payload carries several events; the id ends with the item's position.
    """

    per_delivery_fields: frozenset[str] = frozenset()
    native_id: Callable[[dict[str, Any]], str | None] | None = None
    unique: Callable[[dict[str, Any]], bool] | None = None
    indexed: bool = False


def number(value: Any) -> float | None:
    """A number from a JSON number or numeric string; None otherwise (booleans included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def iso_time(value: Any) -> datetime | None:
    """An ISO 8601 string as a UTC datetime (naive means UTC); None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def json_object(value: Any) -> dict[str, Any]:
    """``value`` as an object: itself if a dict, decoded if a JSON string holding an object, else empty."""
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return {}
    return value if isinstance(value, dict) else {}


def event_id(
    source: str,
    payload: dict[str, Any],
    *,
    received_at: datetime,
    when: datetime | None,
    index: int = 0,
    rules: IdRules = IdRules(),
) -> str:
    """The dedupe id of one event (see the module docstring); for RTC ``payload`` is the whole message."""
    if rules.native_id is not None:
        native = rules.native_id(payload)
        if native:
            return f"{source}:{part(native)}:{index}"
    if rules.per_delivery_fields:
        payload = {key: value for key, value in payload.items() if key not in rules.per_delivery_fields}
    unique = rules.unique is not None and rules.unique(payload)
    hasher = hashlib.sha256(canonical(payload))
    if when is None and not unique:
        hasher.update(b"|received:%d" % (int(received_at.timestamp()) // RECEIPT_BUCKET_SECONDS))
    digest = f"{source}:{hasher.hexdigest()[:32]}"
    return f"{digest}:{index}" if rules.indexed else digest
