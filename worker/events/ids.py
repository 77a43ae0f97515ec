"""Stable event ids and event times.

Event id, per source (the same on every redelivery of the same provider event, by MNS or by HTTP):

- ``rtc``: ``rtc:<MsgId>:<index of the item in Contents>``; without a MsgId, as below plus ``:<index>``.
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
from datetime import UTC, datetime
from typing import Any

import orjson

from worker.events.jsonfield import utc_from_epoch
from worker.events.parse import canonical

RECEIPT_BUCKET_SECONDS = 600

# Fields that differ between deliveries of one event, so they must not change its id.
_PER_DELIVERY_FIELDS: dict[str, frozenset[str]] = {"tencent": frozenset({"t", "sign"})}


def _number(value: Any) -> float | None:
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


def _iso(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _tencent_msg(payload: dict[str, Any]) -> dict[str, Any]:
    msg = payload.get("msg")
    if isinstance(msg, str):
        try:
            msg = orjson.loads(msg)
        except orjson.JSONDecodeError:
            return {}
    return msg if isinstance(msg, dict) else {}


def occurred_at(source: str, payload: dict[str, Any]) -> datetime | None:
    """When the event happened, from the payload (tolerant: unknown types use it too); None if it says not."""
    if source == "ims":
        return _iso(payload.get("EventTime"))
    if source == "rtc":
        item = payload.get(str(payload.get("Event")))
        stamp = _number(item.get("Timestamp")) if isinstance(item, dict) else None
        return utc_from_epoch(stamp if stamp is not None else _number(payload.get("MsgTimestamp")))
    if source == "live.record":
        stop = _number(payload.get("stop_time"))
        return utc_from_epoch(stop if stop is not None else _number(payload.get("start_time")))
    if source == "live.caster":
        return utc_from_epoch(_number(payload.get("ResponseTime")))
    if source == "tencent":
        msg = _tencent_msg(payload)
        stamp = _number(msg.get("task_exit_time")) or _number(msg.get("task_start_time"))
        return utc_from_epoch(stamp) if stamp else None
    return None


def _has_unique_id(source: str, payload: dict[str, Any]) -> bool:
    message = payload.get("EventMessage")
    return source == "live.caster" and isinstance(message, dict) and bool(message.get("RequestId"))


def event_id(
    source: str,
    payload: dict[str, Any],
    *,
    received_at: datetime,
    when: datetime | None,
    index: int = 0,
) -> str:
    """The dedupe id of one event (see the module docstring); for RTC ``payload`` is the whole message."""
    if source == "rtc":
        msg_id = payload.get("MsgId")
        if isinstance(msg_id, str | int) and not isinstance(msg_id, bool) and str(msg_id):
            return f"rtc:{msg_id}:{index}"
    skip = _PER_DELIVERY_FIELDS.get(source)
    if skip:
        payload = {key: value for key, value in payload.items() if key not in skip}
    timeless = when is None and not _has_unique_id(source, payload)
    hasher = hashlib.sha256(canonical(payload))
    if timeless:
        hasher.update(b"|received:%d" % (int(received_at.timestamp()) // RECEIPT_BUCKET_SECONDS))
    digest = f"{source}:{hasher.hexdigest()[:32]}"
    return f"{digest}:{index}" if source == "rtc" else digest
