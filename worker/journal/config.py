"""The journal's settings as the Lua fragment (``worker/lua/journal.lua``) reads them, and the Python side of
its entries."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import orjson

from worker import keyspace
from worker.events import Event
from worker.providers import business_keys
from worker.settings import Settings


def now_ms() -> int:
    return int(time.time() * 1000)


def _oneline(text: str) -> str:
    return text.replace("\n", " ").replace("\r", " ")


@dataclass(frozen=True)
class JournalConfig:
    enabled: bool
    retention_seconds: int
    max_events: int
    max_entries_per_event: int
    max_events_per_key: int
    payload_seconds: int

    @classmethod
    def from_settings(cls, settings: Settings) -> JournalConfig:
        return cls(
            enabled=settings.journal_enabled,
            retention_seconds=settings.journal_retention_seconds,
            max_events=settings.journal_max_events,
            max_entries_per_event=settings.journal_max_entries_per_event,
            max_events_per_key=settings.journal_max_events_per_key,
            payload_seconds=min(settings.journal_payload_seconds, settings.journal_retention_seconds),
        )

    def line(self, now: int | None = None) -> str:
        """ARGV[1] of every journaling script (``journal.lua``): "" turns the journal off."""
        if not self.enabled:
            return ""
        return (
            f"{self.retention_seconds}|{self.max_entries_per_event}|{self.max_events}|"
            f"{self.max_events_per_key}|{self.payload_seconds}|{now_ms() if now is None else now}|{_PREFIXES}"
        )


# The per-event key families the fragment writes (it appends the id or value to the prefix).
_PREFIXES = "|".join(
    (
        keyspace.JOURNAL_ENTRIES_PREFIX,
        keyspace.JOURNAL_PAYLOAD_PREFIX,
        keyspace.JOURNAL_VALUE_PREFIX,
        keyspace.JOURNAL_KEYS_OF_PREFIX,
    )
)

OFF = JournalConfig(False, 1, 1, 1, 1, 0)


def entry(kind: str, now: int, **fields: Any) -> str:
    """One journal entry as the scripts store it: compact JSON with ``t`` (unix ms) and ``e`` (the step)."""
    return orjson.dumps({"t": now, "e": kind, **{k: v for k, v in fields.items() if v is not None}}).decode()


_str = json.encoder.encode_basestring  # C-accelerated JSON string escaping: this runs per received event


def received_blob(event: Event, now: int, kind: str = "received", spooled_ms: int | None = None) -> str:
    """What ``jpublish`` reads for one event: its id, then the received entry (built by hand: hot path).
    ``spooled_ms``: the event came through the shim's spool and waited this long there for Redis."""
    t = event.transport
    parts = [
        f'{{"t":{now},"e":"{kind}","src":{_str(event.source)},"type":{_str(event.type)},"via":"{t.kind}"'
    ]
    if t.queue is not None:
        parts.append(f',"q":{_str(t.queue)}')
    if t.message_id is not None:
        parts.append(f',"mid":{_str(t.message_id)}')
    if t.dequeue_count is not None:
        parts.append(f',"dq":{int(t.dequeue_count)}')
    if t.request_id is not None:
        parts.append(f',"req":{_str(t.request_id)}')
    if spooled_ms is not None:
        parts.append(f',"spooled_ms":{int(spooled_ms)}')
    return f"{event.id}\n{''.join(parts)}}}"


def _plain(value: str) -> str:
    # IMS AI audit callbacks name their media as '{"media": "<id>", "type": "Media"}': index the id.
    if value.startswith("{"):
        try:
            inner = json.loads(value)
        except ValueError:
            return value
        if isinstance(inner, dict) and isinstance(inner.get("media"), str):
            return str(inner["media"])
    return value


def index_blob(event: Event) -> str:
    """What ``jindex`` reads: a JSON list of ``[name, value key suffix]``, one per business key
    (``worker.providers``). Structured, not newline-joined (a value holding a newline forged another entry);
    the suffix is ``keyspace.part`` of the value (a long or odd value: its digest, not a key of its size)."""
    pairs = [[name, keyspace.part(_plain(value))] for name, value in business_keys(event).items()]
    return orjson.dumps(pairs).decode()


def payload_json(event: Event) -> str:
    return event.__pydantic_serializer__.to_json(event).decode()


def error_entry(now: int, handler: str, error: str) -> str:
    return entry("failed", now, h=handler, err=_oneline(error)[:500])


def stats_blob(fields: dict[str, float]) -> str:
    return "\n".join(f"{_oneline(k).replace(chr(9), ' ')}\t{v}" for k, v in fields.items())
