"""Journal entries written outside the pipeline's hot path: retries (the failure path), replays
(``worker/lua/journal_note.lua``)."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from worker import keyspace, lua
from worker.journal.config import JournalConfig, entry, now_ms, stats_blob


class JournalWriter:
    def __init__(self, client: redis.Redis, config: JournalConfig) -> None:
        self._config = config
        self._note = lua.register(client, "journal_note")

    def note(
        self,
        event_id: str,
        kind: str,
        *,
        stats: dict[str, float] | None = None,
        failed: bool = False,
        **fields: object,
    ) -> None:
        now = now_ms()
        self.write(event_id, [entry(kind, now, **fields)], stats=stats, failed=failed, now=now)

    def write(
        self,
        event_id: str,
        entries: Sequence[str],
        *,
        stats: dict[str, float] | None = None,
        failed: bool = False,
        now: int | None = None,
    ) -> None:
        args = [self._config.line(now), event_id, stats_blob(stats or {}), "1" if failed else "0", *entries]
        self._note(keys=keyspace.JOURNAL_KEYS, args=args)
