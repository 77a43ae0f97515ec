"""Reading the journal: an event's history, the events under a business key, the latest events."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import orjson
import redis

from worker import keyspace

_PAGE = 200
# Steps that are details of an attempt rather than where the event stands.
_DETAIL = frozenset({"succeeded", "skipped", "failed", "attempt", "inbox"})


def _ms_time(ms: float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass(frozen=True)
class Step:
    event_id: str
    at: datetime
    kind: str
    fields: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "at": self.at.isoformat(), "step": self.kind, **self.fields}


@dataclass
class EventHistory:
    event_id: str
    steps: list[Step] = field(default_factory=list)

    def _first(self, name: str) -> str | None:
        for step in self.steps:
            if name in step.fields:
                return str(step.fields[name])
        return None

    @property
    def type(self) -> str | None:
        return self._first("type")

    @property
    def source(self) -> str | None:
        return self._first("src")

    @property
    def first_seen(self) -> datetime | None:
        return self.steps[0].at if self.steps else None

    @property
    def status(self) -> str:
        """The last step that says where the event stands (handled, retried, dead-lettered, ...)."""
        for step in reversed(self.steps):
            if step.kind not in _DETAIL:
                return step.kind
        return self.steps[-1].kind if self.steps else "unknown"

    @property
    def failed(self) -> bool:
        return any(s.kind in ("failed", "dead-lettered") for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "type": self.type,
            "source": self.source,
            "first_seen": self.first_seen.isoformat() if self.first_seen else None,
            "status": self.status,
            "failed": self.failed,
        }


def _parse(event_id: str, raw: bytes) -> Step:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = {"e": "unreadable", "t": 0}
    if not isinstance(data, dict):
        data = {"e": "unreadable", "t": 0}
    at = _ms_time(float(data.pop("t", 0) or 0))
    return Step(event_id, at, str(data.pop("e", "?")), data)


class JournalReader:
    """Sync reads over a client; Redis errors propagate (the CLI reports them)."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def histories(self, event_ids: Sequence[str]) -> list[EventHistory]:
        """Each event's steps, oldest first; ids with no journal left are left out."""
        with self._client.pipeline(transaction=False) as pipe:
            for event_id in event_ids:
                pipe.lrange(keyspace.journal_entries(event_id), 0, -1)
            pages = cast(list[list[bytes]], pipe.execute())
        found = []
        for event_id, raw in zip(event_ids, pages, strict=True):
            if raw:
                found.append(EventHistory(event_id, [_parse(event_id, r) for r in raw]))
        return found

    def resolve(self, key: str) -> list[str]:
        """Event ids for KEY: an event id, a business key value, or ``Name=value``; oldest first."""
        name, _, value = key.partition("=") if "=" in key else ("", "", key)
        members = cast(list[bytes], self._client.zrange(keyspace.journal_value(value), 0, -1))
        ids: list[str] = []
        for member in members:
            member_name, _, event_id = member.decode().partition("|")
            if (not name or member_name == name) and event_id not in ids:
                ids.append(event_id)
        if not name and self._client.exists(keyspace.journal_entries(key)) and key not in ids:
            ids.insert(0, key)
        return ids

    def trace(self, key: str) -> tuple[list[EventHistory], list[Step]]:
        """The histories of every event carrying KEY, and all their steps merged in time order."""
        histories = self.histories(self.resolve(key))
        steps = sorted((s for h in histories for s in h.steps), key=lambda s: s.at)  # stable: keeps order
        return histories, steps

    def iter_recent(
        self, *, since: datetime | None = None, until: datetime | None = None, failed: bool = False
    ) -> Iterator[str]:
        """Event ids, newest first (by first seen, or by failure time with ``failed``)."""
        key = keyspace.JOURNAL_FAILED if failed else keyspace.JOURNAL_INDEX
        low = int(since.timestamp() * 1000) if since else "-inf"
        high: int | str = int(until.timestamp() * 1000) if until else "+inf"
        offset = 0
        while True:
            page = cast(list[bytes], self._client.zrevrangebyscore(key, high, low, start=offset, num=_PAGE))
            yield from (m.decode() for m in page)
            if len(page) < _PAGE:
                return
            offset += _PAGE

    def recent(
        self,
        *,
        event_type: str | None = None,
        source: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        failed: bool = False,
        limit: int | None = 50,
    ) -> list[EventHistory]:
        """Latest events matching all filters (``event_type`` is a glob), newest first."""
        found: list[EventHistory] = []
        batch: list[str] = []

        def flush() -> bool:
            for history in self.histories(batch):
                if event_type and not fnmatch.fnmatchcase(history.type or "", event_type):
                    continue
                if source and history.source != source:
                    continue
                found.append(history)
                if limit is not None and len(found) >= limit:
                    return True
            batch.clear()
            return False

        for event_id in self.iter_recent(since=since, until=until, failed=failed):
            batch.append(event_id)
            if len(batch) >= _PAGE and flush():
                return found
        flush()
        return found

    def payload(self, event_id: str) -> bytes | None:
        return cast(bytes | None, self._client.get(keyspace.journal_payload(event_id)))
