"""How close Redis is to its memory limit, from ``INFO memory`` (``maxmemory`` is reported there, so managed
Redis that disables ``CONFIG`` answers it too). A leaf beside ``redisconn``: both inputs share the rule."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MemoryState:
    used: int
    limit: int  # 0: no maxmemory configured, never "near"

    def near_limit(self, ratio: float) -> bool:
        return self.limit > 0 and self.used >= ratio * self.limit

    def as_fields(self) -> dict[str, int]:
        return {"used_memory": self.used, "maxmemory": self.limit}


def memory_state(info: Mapping[str, Any]) -> MemoryState:
    """The answer of ``INFO memory`` as parsed by redis-py."""
    return MemoryState(used=int(info.get("used_memory", 0)), limit=int(info.get("maxmemory", 0)))
