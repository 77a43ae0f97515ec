"""Journal entries written outside the pipeline's hot path: retries (the failure path), replays."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from worker.journal.config import JournalConfig, entry, now_ms, stats_blob
from worker.journal.lua import JOURNAL_LUA

# ARGV: event id, metrics counters, mark as failed (0/1), entries..., settings line.
_NOTE = (
    JOURNAL_LUA
    + """
if J and #ARGV > 4 then
  jadd(ARGV[1], unpack(ARGV, 4, #ARGV - 1))
  if ARGV[3] == '1' then jfailed(ARGV[1]) end
end
jstats(ARGV[2])
return 1
"""
)


class JournalWriter:
    def __init__(self, client: redis.Redis, config: JournalConfig) -> None:
        self._config = config
        self._note = client.register_script(_NOTE)

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
        args = [event_id, stats_blob(stats or {}), "1" if failed else "0", *entries, self._config.tail(now)]
        self._note(keys=[], args=args)
