"""What one payload may fan out to, and the stored form of each event of a fanned-out message.

An RTC subscription message carries several events in ``Contents``. Each event stores the message with only
its own item in ``Contents`` (never a copy of every sibling), so the fields outside ``Contents`` are copied
once per event: that copy is bounded too, or a large header over many tiny items would multiply in Redis.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from worker.errors import TooManyEvents

FANOUT_FIELD = "Contents"
# The default of ``Settings.max_events_per_request`` (this module cannot import the settings).
DEFAULT_MAX_EVENTS = 100
# Fields outside ``Contents`` up to this size are always accepted: the documented ones (MsgId, MsgTimestamp,
# SubscribeID, AppId, ChannelID) take 149 bytes in the provider's example and about 240 with the longest ids
# the API allows, and a message of many small ChannelEvents has more header copies than bytes of its own. At
# 256, 100 of the smallest items under the largest header cost Redis under 20x the body (bench.redis_bytes).
HEADER_ALLOWANCE_BYTES = 256


def check_fanout(source: str, obj: dict[str, Any], count: int, max_events: int | None) -> None:
    """Raise ``TooManyEvents`` when ``obj`` would give more than ``max_events`` events, or when its fields
    outside ``Contents`` exceed ``HEADER_ALLOWANCE_BYTES`` and, copied into each event, would outweigh the
    whole message."""
    if max_events is not None and count > max_events:
        raise TooManyEvents(
            f"the {source} message carries {count} events; at most {max_events} are accepted per request "
            "(IMS_WORKER_MAX_EVENTS_PER_REQUEST)"
        )
    if count < 2:
        return
    header_bytes = len(orjson.dumps({key: value for key, value in obj.items() if key != FANOUT_FIELD}))
    if header_bytes <= HEADER_ALLOWANCE_BYTES:
        return
    whole = len(orjson.dumps(obj))
    if header_bytes * (count - 1) > whole:
        raise TooManyEvents(
            f"the {source} message's fields outside {FANOUT_FIELD} ({header_bytes} bytes) would be "
            f"copied into each of its {count} events: more than the whole message ({whole} bytes)"
        )


def own_raw(obj: dict[str, Any], index: int, count: int) -> dict[str, Any]:
    """The stored ``raw`` of event ``index`` of ``count``: the message itself when it carries one event,
    else the message with ``Contents`` holding only that event's item."""
    contents = obj.get(FANOUT_FIELD)
    if count == 1 or not isinstance(contents, Sequence) or isinstance(contents, str):
        return obj
    return {**obj, FANOUT_FIELD: [contents[index]]}


def item_of(raw: dict[str, Any]) -> dict[str, Any]:
    """What an event's model validates, given its stored ``raw``: for a fan-out message holding one item, the
    message's other fields with that item's fields over them (the RTC identifier's rule); else ``raw``."""
    contents = raw.get(FANOUT_FIELD)
    if isinstance(contents, list) and len(contents) == 1 and isinstance(contents[0], dict):
        return {**{key: value for key, value in raw.items() if key != FANOUT_FIELD}, **contents[0]}
    return raw


def derivable(raw: dict[str, Any], payload: dict[str, Any]) -> bool:
    """Whether ``item_of(raw)`` gives back ``payload`` (what the model validated), so that a task message
    may leave ``data`` out: true for every single-event payload and for RTC items."""
    return item_of(raw) is payload or (FANOUT_FIELD in raw and item_of(raw) == payload)
