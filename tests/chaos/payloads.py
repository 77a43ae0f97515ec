"""The bodies a chaos scenario sends: every provider's documented samples made unique, plus the bad ones.

Each body is a sample with a sequence number added (providers add fields; extras are kept), so that every
sent event has its own id and anything that reaches a handler can be traced back to the body that caused it.
"""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tests.chaos.spec import POISON_FIELD
from tests.conftest import SAMPLES_DIR
from worker.providers import normalize

SEQ_FIELD = "ChaosSeq"
SAMPLE_DIRS = {
    "ims": "ims",
    "live.record": "live-record",
    "live.caster": "live-caster",
    "rtc": "rtc",
    "tencent": "tencent-css",
}
SAMPLES: dict[str, list[dict[str, Any]]] = {
    source: [json.loads(p.read_bytes()) for p in sorted((SAMPLES_DIR / folder).glob("*.json"))]
    for source, folder in SAMPLE_DIRS.items()
}
UNKNOWN_IMS_TYPE = "ChaosFutureEvent"  # a type IMS might add next year: must reach unknown.ims
INVALID_PAYLOAD = "invalid-payload"  # the consumer's dead-letter reason for a body that is no event


def unique_payload(source: str, seq: int, *, poison: str | None = None) -> dict[str, Any]:
    samples = SAMPLES[source]
    payload: dict[str, Any] = json.loads(json.dumps(samples[seq % len(samples)]))
    payload[SEQ_FIELD] = seq
    if source == "rtc":
        payload["MsgId"] = f"chaos-{seq}"  # RTC ids are the MsgId plus the item's position
    if poison:
        payload[POISON_FIELD] = poison
    return payload


def ids_at(source: str, payload: dict[str, Any], received_at: float) -> list[tuple[str, str]]:
    """(id, type) of each event of ``payload`` as the service would compute them at ``received_at``."""
    moment = datetime.fromtimestamp(received_at, tz=UTC)
    return [(e.id, e.type) for e in normalize(source, payload, received_at=moment)]


def id_choices(source: str, payload: dict[str, Any], times: list[float]) -> list[dict[str, str]]:
    """Per event of ``payload``: the ids it may get when received at any of ``times`` (one, unless the times
    straddle a 10-minute receipt bucket and the payload carries no time of its own)."""
    per_time = [ids_at(source, payload, t) for t in times]
    return [dict(column) for column in zip(*per_time, strict=True)]


@dataclass(frozen=True)
class MnsBody:
    text: str  # what goes on the queue
    kind: str  # valid | unknown | poison-retry | poison-permanent | garbage | not-event | invalid
    events: tuple[tuple[str, str], ...] = ()  # (id, type); empty for bodies that must be dead-lettered
    poison: str | None = None


def mns_body(seq: int, rng: random.Random) -> MnsBody:
    """One IMS message: mostly valid events of all 29 types, half base64; some unknown, poison or bad."""
    roll = rng.random()
    if roll < 0.010:
        return MnsBody(f"chaos-garbage-{seq} <not json at all>", "garbage")
    if roll < 0.020:
        return MnsBody(json.dumps({"UserId": seq, SEQ_FIELD: seq}), "not-event")
    if roll < 0.035:
        payload = unique_payload("ims", seq)
        del payload["EventTime"]  # a known type whose required field is missing: fails validation
        return MnsBody(json.dumps(payload), "invalid")
    poison = "retry" if 0.035 <= roll < 0.050 else "permanent" if roll < 0.057 else None
    payload = unique_payload("ims", seq, poison=poison)
    kind = f"poison-{poison}" if poison else "valid"
    if 0.057 <= roll < 0.085:
        payload["EventType"] = UNKNOWN_IMS_TYPE
        kind = "unknown"
    text = json.dumps(payload)
    events = tuple((e.id, e.type) for e in normalize("ims", text))
    if rng.random() < 0.5:
        text = base64.b64encode(text.encode()).decode()  # IMS writes plain JSON; MNS consoles base64
    return MnsBody(text, kind, events, poison)


def oversize(payload: dict[str, Any], limit: int) -> dict[str, Any]:
    return {**payload, "ChaosPadding": "x" * (limit + 1024)}


def invalid_for(source: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    """``payload`` made to fail validation (a required field removed), for sources where one is required."""
    broken = dict(payload)
    if source == "ims":
        del broken["EventTime"]
        return broken
    if source == "rtc":
        broken["Contents"] = "not a list"
        return broken
    return None
