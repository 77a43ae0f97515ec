"""Delivery leases: a live worker keeps the Redis-broker messages it holds invisible to the others.

kombu's Redis transport records every message a worker takes in the ``unacked`` hash and the
``unacked_index`` sorted set, scored with the time of delivery; any worker's event loop puts back the ones
scored older than ``visibility_timeout`` (``QoS.restore_visible``). That timeout used to be sized for the
longest task plus the longest retry countdown (about 70 minutes), so the messages of a worker killed with
kill -9 waited that long. Here the timeout is a short lease (60 s by default) and a heartbeat thread in each
worker's main process re-scores, every ``lease_heartbeat_seconds``, the index entries of every delivery the
worker still holds: running tasks, prefetched ones and retries waiting for their countdown alike. A slow task
on a live worker is therefore never restored; a dead worker's messages are restored one lease after its last
beat (plus one restore interval).

The same beat records ``keyspace.held(task id)`` -> the delivery tag for the outbox sweep
(``worker.delivery.outbox``): a copy whose task kombu holds under whatever delivery (a retry is a new message
with a new delivery tag) is not lost. The key outlives the lease (``HELD_KEY_LEASES``), so that the tag is
still known while kombu restores a dead worker's message; kombu's ``unacked`` hash, not the key, says whether
it is held.

The kombu internals this needs (the deliveries a channel holds; re-scoring the index through the channel's
own client, so that TLS, Sentinel and ``global_keyprefix`` apply as for kombu itself) are
``worker.kombuadapter``'s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import redis
import structlog

from worker import keyspace
from worker.kombuadapter import held_deliveries, rescore

log = structlog.get_logger(__name__)


HELD_KEY_LEASES = 5


class LeaseKeeper(threading.Thread):
    """Renews the leases of the deliveries of one worker until stopped.

    ``channel`` returns the consumer's current channel (it changes when the connection is re-established)
    or ``None`` while there is none; ``client`` is the Redis holding the outbox (the broker's Redis when the
    outbox is in use)."""

    def __init__(
        self,
        channel: Callable[[], Any],
        client: redis.Redis,
        *,
        lease_seconds: float,
        interval: float,
    ) -> None:
        super().__init__(name="lease-heartbeat", daemon=True)
        self._channel = channel
        self._client = client
        self._lease_ms = int(lease_seconds * 1000)
        self._held_ttl_ms = self._lease_ms * HELD_KEY_LEASES
        self.interval = interval
        self.stopping = threading.Event()
        self.beats = 0
        self._last_ok = time.monotonic()

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                self.beat()
            except Exception as exc:  # noqa: BLE001 - the heartbeat must outlive any one failure
                late = time.monotonic() - self._last_ok
                # Past the lease other workers restore our messages: a running task may then run twice.
                level = log.error if late * 1000 > self._lease_ms / 2 else log.warning
                level("lease heartbeat failed", error=type(exc).__name__, seconds_since_last=round(late, 1))

    def beat(self) -> int:
        """Renew every held delivery once; returns how many there were."""
        channel = self._channel()
        if channel is None:
            return 0
        deliveries = held_deliveries(channel)
        if deliveries:
            rescore(channel, [d.tag for d in deliveries])
            with self._client.pipeline(transaction=False) as pipe:
                for d in deliveries:
                    if d.task_id:
                        pipe.set(keyspace.held(d.task_id), d.tag, px=self._held_ttl_ms)
                pipe.execute()
        self.beats += 1
        self._last_ok = time.monotonic()
        return len(deliveries)

    def stop(self) -> None:
        self.stopping.set()
