"""MNS is the buffer, not Redis: the consumer's pollers stop receiving while their Celery queues are deep.

One ``Backpressure`` per consumer, shared by its pollers. It asks Redis (LLEN of each target queue, and
``INFO memory``) at most once per check interval, whichever poller asks; in between it adds what the pollers
published to the last answer, so the estimate never falls behind the truth (workers only shorten queues).
A poller receives only while the estimate is below the high-water mark, so the queues hold at most the mark
plus one batch per poller. Once paused it resumes only when Redis reports the backlog below the low-water
mark (hysteresis: no flapping around one figure). It pauses too while Redis is near ``maxmemory``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import redis
import structlog

from worker.mns import metrics
from worker.mns.batch import SOURCE
from worker.providers import queue_for
from worker.redisconn import sync_client
from worker.redismemory import MemoryState, memory_state
from worker.settings import Settings

log = structlog.get_logger(__name__)


class Backpressure:
    def __init__(
        self,
        client: redis.Redis | None,
        queues: Sequence[str],
        *,
        high_water: int,
        low_water: int,
        check_seconds: float,
        memory_ratio: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._queues = sorted(set(queues))
        self.high_water = high_water
        self.low_water = low_water
        self.check_seconds = check_seconds
        self._memory_ratio = memory_ratio
        self._clock = clock
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._backlog = 0
        self._memory = MemoryState(0, 0)
        self._paused_since: float | None = None
        metrics.PAUSED.set(0)

    @property
    def paused(self) -> bool:
        return self._paused_since is not None

    @property
    def backlog(self) -> int:
        """The estimate: the last answer of Redis plus what was published since."""
        return self._backlog

    def allow(self) -> bool:
        """May a poller receive a batch now? Raises ``redis.RedisError`` when Redis cannot be asked."""
        if self._client is None:
            return True
        with self._lock:
            now = self._clock()
            if now - self._checked_at >= self.check_seconds:
                self._refresh()
                self._checked_at = now
            self._transition(now)
            return not self.paused

    def published(self, count: int) -> None:
        if count and self._client is not None:
            with self._lock:
                self._backlog += count

    def _refresh(self) -> None:
        assert self._client is not None
        with self._client.pipeline(transaction=False) as pipe:
            for queue in self._queues:
                pipe.llen(queue)
            pipe.info("memory")
            *lengths, info = pipe.execute()
        for queue, length in zip(self._queues, lengths, strict=True):
            metrics.BACKLOG.labels(queue).set(int(length))
        self._backlog = sum(int(length) for length in lengths)
        self._memory = memory_state(info)

    def _transition(self, now: float) -> None:
        memory_high = self._memory.near_limit(self._memory_ratio)
        if not self.paused and (self._backlog >= self.high_water or memory_high):
            self._paused_since = now
            metrics.PAUSED.set(1)
            metrics.PAUSES.labels("redis-memory" if memory_high else "backlog").inc()
            log.warning(
                "mns.backpressure.paused",
                reason="redis-memory" if memory_high else "backlog",
                backlog=self._backlog,
                high_water=self.high_water,
                queues=self._queues,
                **self._memory.as_fields(),
            )
        elif self._paused_since is not None and self._backlog < self.low_water and not memory_high:
            paused_s = round(now - self._paused_since, 1)
            self._paused_since = None
            metrics.PAUSED.set(0)
            log.info(
                "mns.backpressure.resumed",
                backlog=self._backlog,
                low_water=self.low_water,
                paused_s=paused_s,
                queues=self._queues,
            )


def backpressure_for(settings: Settings) -> Backpressure:
    """Watches the queues MNS events go to (their source's and the unknown queue) on the broker's Redis;
    with another broker, only the memory of the Redis that holds the markers."""
    queues = [queue_for(settings, SOURCE), queue_for(settings, "unknown")]
    url = settings.broker_url if settings.broker_is_redis else settings.effective_redis_url
    return Backpressure(
        sync_client(url, settings),
        queues if settings.broker_is_redis else [],
        high_water=settings.consumer_high_water,
        low_water=settings.consumer_low_water,
        check_seconds=settings.consumer_backlog_check_ms / 1000,
        memory_ratio=settings.redis_memory_high_ratio,
    )
