"""The dead-letter store: a Redis stream of everything that could not be handled, kept until an operator acts.

Each entry holds the raw payload (byte for byte, but for a provider's body signature: Tencent's ``sign`` is
stored as ``[REDACTED]``, since one captured ``t``/``sign`` pair authenticates any body until ``t``), the
normalized event as JSON when there was one (the same signature removed), the source, type and id, the
reason, an exception summary, the attempt count, the failing handlers and timestamps. Signed URLs inside a
body are kept (a redrive needs the event as sent); the CLI prints them redacted unless ``--raw``.
The stream is never trimmed: nothing is dropped silently. ``worker.delivery.redrive`` puts entries back on
the broker.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import redis

from worker import keyspace, lua
from worker.errors import BrokerUnavailable
from worker.events import Event, Transport
from worker.journal.config import OFF, JournalConfig, stats_blob
from worker.redact import strip_signatures
from worker.redisconn import store_client, sync_client
from worker.settings import Settings

STREAM_KEY = keyspace.DEADLETTERS
_PAGE = 500
ONCE_TTL_SECONDS = 7 * 86400
_Page = list[tuple[bytes, dict[bytes, bytes]]]  # what XRANGE answers on a client without decode_responses


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "replace")


def _without_signatures(raw: str | bytes) -> str | bytes:
    if isinstance(raw, str):
        return strip_signatures(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw  # not JSON text: no signature member to remove
    stripped = strip_signatures(text)
    return raw if stripped == text else stripped.encode("utf-8")


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class DeadLetter:
    id: str  # the stream entry id ("<ms>-<seq>"), also when it was dead-lettered
    raw: bytes
    source: str
    reason: str
    event_type: str | None
    event_id: str | None
    event_json: str | None
    error: str | None
    attempts: int
    handlers: tuple[str, ...]
    transport: dict[str, Any] | None
    received_at: str | None

    @property
    def dead_lettered_at(self) -> datetime:
        return datetime.fromtimestamp(int(self.id.split("-")[0]) / 1000, tz=UTC)

    @property
    def raw_text(self) -> str:
        return self.raw.decode("utf-8", "replace")

    @classmethod
    def from_fields(cls, entry_id: str, fields: Mapping[bytes, bytes]) -> DeadLetter:
        transport = fields.get(b"transport")
        handlers = _text(fields.get(b"handlers")) or ""
        return cls(
            id=entry_id,
            raw=fields.get(b"raw", b""),
            source=_text(fields.get(b"source")) or "unknown",
            reason=_text(fields.get(b"reason")) or "",
            event_type=_text(fields.get(b"type")),
            event_id=_text(fields.get(b"event_id")),
            event_json=_text(fields.get(b"event")),
            error=_text(fields.get(b"error")),
            attempts=int(fields.get(b"attempts", b"0")),
            handlers=tuple(h for h in handlers.split(",") if h),
            transport=json.loads(transport) if transport else None,
            received_at=_text(fields.get(b"received_at")),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view for ``dlq show`` and ``dlq list --json``; the raw body as text (repr if binary)."""
        try:
            raw: Any = self.raw.decode("utf-8")
        except UnicodeDecodeError:
            raw = repr(self.raw)
        return {
            "id": self.id,
            "dead_lettered_at": self.dead_lettered_at.isoformat(),
            "source": self.source,
            "type": self.event_type,
            "event_id": self.event_id,
            "reason": self.reason,
            "error": self.error,
            "attempts": self.attempts,
            "handlers": list(self.handlers),
            "transport": self.transport,
            "received_at": self.received_at,
            "raw": raw,
            "event": json.loads(self.event_json) if self.event_json else None,
        }


@dataclass(frozen=True)
class DeadLetterFilter:
    """All criteria must hold. ``event_type`` is a glob (``ims.*``), ``reason`` a case-blind substring."""

    source: str | None = None
    event_type: str | None = None
    reason: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, entry: DeadLetter) -> bool:
        if self.source is not None and entry.source != self.source:
            return False
        if self.event_type is not None and not fnmatch.fnmatchcase(entry.event_type or "", self.event_type):
            return False
        return self.reason is None or self.reason.lower() in entry.reason.lower()


class DeadLetterStoreFull(BrokerUnavailable):
    """The source holds as many dead letters (or bytes of them) as it may: nothing was added. Callers keep the
    event where it is, as when Redis is unreachable: the consumer leaves the message in MNS, a task retries
    later, the shim answers 503 (one captured signature pair must not fill Redis with distinct bodies)."""


@dataclass(frozen=True)
class DeadLetterBounds:
    max_entries: int = 10_000
    max_bytes: int = 16 * 1024 * 1024

    @classmethod
    def from_settings(cls, settings: Settings) -> DeadLetterBounds:
        return cls(settings.deadletter_max_entries_per_source, settings.deadletter_max_bytes_per_source)


def _size(values: Iterable[object]) -> int:
    """An entry's size as the bound counts it: the bytes of its field values."""
    return sum(len(v) if isinstance(v, bytes) else len(str(v).encode()) for v in values)


class DeadLetterStore:
    """Sync access to the stream, from a Redis URL or client. Redis errors propagate unchanged."""

    def __init__(
        self,
        redis_or_url: str | redis.Redis,
        *,
        journal: JournalConfig = OFF,
        bounds: DeadLetterBounds = DeadLetterBounds(),
    ) -> None:
        self._client = sync_client(redis_or_url) if isinstance(redis_or_url, str) else redis_or_url
        self._owns_client = isinstance(redis_or_url, str)
        self._journal = journal
        self.bounds = bounds
        self._add = lua.register(self._client, "deadletter_add")

    @classmethod
    def for_settings(cls, settings: Settings) -> DeadLetterStore:
        """The store at ``settings``' Redis, connected with its TLS, ACL or Sentinel settings."""
        store = cls(
            store_client(settings),
            journal=JournalConfig.from_settings(settings),
            bounds=DeadLetterBounds.from_settings(settings),
        )
        store._owns_client = True
        return store

    def add(
        self,
        *,
        raw: str | bytes | Mapping[str, Any],
        source: str,
        reason: str,
        event_type: str | None = None,
        event_id: str | None = None,
        error: str | None = None,
        attempts: int = 0,
        transport: Transport | None = None,
        event: Event | None = None,
        handlers: Sequence[str] = (),
        once_key: str | None = None,
    ) -> str | None:
        """Append an entry; returns its id. With ``once_key`` (e.g. the MNS message id) an entry already added
        under that key in the last week is not added again and ``None`` is returned: a poison message whose
        delete failed comes back, and must not fill the store with copies of itself."""
        if isinstance(raw, Mapping):
            raw = json.dumps(raw, ensure_ascii=False, separators=(",", ":"))
        raw = _without_signatures(raw)
        fields: dict[str, str | bytes | int] = {
            "raw": raw,
            "source": source,
            "reason": reason,
            "attempts": attempts,
        }
        if event is not None:
            fields["event"] = strip_signatures(event.model_dump_json())
            fields["received_at"] = event.received_at.isoformat()
            event_type = event_type or event.type
            event_id = event_id or event.id
            transport = transport or event.transport
        optional = {"type": event_type, "event_id": event_id, "error": error, "handlers": ",".join(handlers)}
        fields.update({key: value for key, value in optional.items() if value})
        if transport is not None:
            fields["transport"] = transport.model_dump_json(exclude_none=True)
        flat = [item for pair in fields.items() for item in pair]
        keys = [*keyspace.JOURNAL_KEYS, STREAM_KEY, keyspace.DEADLETTER_USAGE]
        if once_key is not None:
            keys.append(keyspace.deadletter_once(once_key))
        counters = stats_blob({f"deadlettered|{source}|{event_type or 'unknown'}": 1})
        size = _size(fields.values())
        head: list[str | bytes | int] = [
            self._journal.line(), ONCE_TTL_SECONDS, event_id or "", reason, counters,
            source, size, self.bounds.max_entries, self.bounds.max_bytes,
        ]  # fmt: skip
        entry_id = self._add(keys=keys, args=[*head, *flat])
        if entry_id is None:
            return None
        if entry_id == -1:
            raise DeadLetterStoreFull(
                f"the dead-letter store holds as many {source} entries as it may ({self.bounds.max_entries} "
                f"entries or {self.bounds.max_bytes} bytes): this one ({size} bytes) was not added"
            )
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    def iter(self, where: DeadLetterFilter | None = None) -> Iterator[DeadLetter]:
        """Entries oldest first, paging through the stream (time bounds are applied by Redis itself)."""
        where = where or DeadLetterFilter()
        start = str(_ms(where.since)) if where.since else "-"
        end = str(_ms(where.until)) if where.until else "+"
        while True:
            page = cast(_Page, self._client.xrange(STREAM_KEY, min=start, max=end, count=_PAGE))
            for raw_id, fields in page:
                entry = DeadLetter.from_fields(raw_id.decode(), fields)
                if where.matches(entry):
                    yield entry
            if len(page) < _PAGE:
                return
            start = "(" + page[-1][0].decode()

    def list(self, where: DeadLetterFilter | None = None, *, limit: int | None = None) -> list[DeadLetter]:
        found: list[DeadLetter] = []
        for entry in self.iter(where):
            if limit is not None and len(found) >= limit:
                break
            found.append(entry)
        return found

    def count(self, where: DeadLetterFilter | None = None) -> int:
        if where is None or where == DeadLetterFilter():
            return int(self._client.xlen(STREAM_KEY))
        return sum(1 for _ in self.iter(where))

    def get(self, entry_id: str) -> DeadLetter | None:
        try:
            page = cast(_Page, self._client.xrange(STREAM_KEY, min=entry_id, max=entry_id, count=1))
        except redis.ResponseError:  # not a stream id at all
            return None
        return DeadLetter.from_fields(page[0][0].decode(), page[0][1]) if page else None

    def delete(self, entry_ids: Sequence[str]) -> int:
        """Delete entries and give their room back to their source's bound."""
        if not entry_ids:
            return 0
        freed: dict[str, list[int]] = {}
        for entry_id in entry_ids:
            try:
                page = cast(_Page, self._client.xrange(STREAM_KEY, min=entry_id, max=entry_id, count=1))
            except redis.ResponseError:
                continue
            if page:
                fields = page[0][1]
                room = freed.setdefault(_text(fields.get(b"source")) or "unknown", [0, 0])
                room[0] += 1
                room[1] += _size(fields.values())
        with self._client.pipeline(transaction=True) as pipe:
            pipe.xdel(STREAM_KEY, *entry_ids)
            for source, (count, size) in freed.items():
                pipe.hincrby(keyspace.DEADLETTER_USAGE, f"{source}|n", -count)
                pipe.hincrby(keyspace.DEADLETTER_USAGE, f"{source}|bytes", -size)
            return int(pipe.execute()[0])

    def usage(self) -> dict[str, tuple[int, int]]:
        """Per source: (entries, bytes) held."""
        raw = cast(dict[bytes, bytes], self._client.hgetall(keyspace.DEADLETTER_USAGE))
        found: dict[str, tuple[int, int]] = {}
        for field, value in raw.items():
            source, _, what = field.decode().rpartition("|")
            n, size = found.get(source, (0, 0))
            found[source] = (int(value), size) if what == "n" else (n, int(value))
        return found

    def close(self) -> None:
        if self._owns_client:
            self._client.close()
