"""503 + Retry-After while Redis is near ``maxmemory``, instead of letting its writes fail.

With ``noeviction`` a full Redis refuses every write, and with an evicting policy it drops keys (markers,
task messages) silently. Either way the provider is better served by "come back later" before that point.
``INFO memory`` is asked at most once per ``ttl`` seconds whatever the request rate; if Redis cannot be
asked, the request goes on and meets the publisher's own error handling.
"""

from __future__ import annotations

import time

import redis.asyncio
import structlog

from worker.redisconn import REDIS_ERRORS, async_client
from worker.redismemory import MemoryState, memory_state
from worker.settings import Settings
from worker.shim.errors import ShimError

log = structlog.get_logger(__name__)

CACHE_SECONDS = 1.0
RETRY_AFTER_SECONDS = "30"


class RedisMemoryHigh(ShimError):
    """Raised while Redis is near its memory limit: nothing is enqueued, the provider should retry (503)."""

    status = 503
    code = "redis_memory_high"


class MemoryGuard:
    def __init__(self, client: redis.asyncio.Redis, ratio: float, ttl: float = CACHE_SECONDS) -> None:
        self._client = client
        self._ratio = ratio
        self._ttl = ttl
        self._state = MemoryState(0, 0)
        self._checked_at = float("-inf")
        self._high = False

    @property
    def fresh(self) -> bool:
        """Whether ``check`` would answer from its last reading, without asking Redis."""
        return time.monotonic() - self._checked_at < self._ttl

    async def check(self) -> None:
        """Raise ``RedisMemoryHigh`` when the last reading (at most ``ttl`` old) is near the limit."""
        now = time.monotonic()
        if now - self._checked_at >= self._ttl:
            self._checked_at = now
            try:
                self._state = memory_state(await self._client.info("memory"))
            except REDIS_ERRORS:
                self._state = MemoryState(0, 0)  # unknown: let the publish path report what is wrong
            high = self._state.near_limit(self._ratio)
            if high != self._high:
                self._high = high
                event = "shim.redis_memory.high" if high else "shim.redis_memory.ok"
                log.warning(event, ratio=self._ratio, **self._state.as_fields())
        if self._high:
            raise RedisMemoryHigh(
                f"Redis is at {self._state.used} of its {self._state.limit} bytes; the event was not "
                "accepted, retry later",
                headers={"Retry-After": RETRY_AFTER_SECONDS},
            )

    async def aclose(self) -> None:
        await self._client.aclose()


def memory_guard_for(settings: Settings) -> MemoryGuard:
    """Guards the Redis the shim writes to: the broker's, or the markers' when the broker is not Redis."""
    url = settings.broker_url if settings.broker_is_redis else settings.effective_redis_url
    return MemoryGuard(async_client(url, settings), settings.redis_memory_high_ratio)
