"""Broker chaos at default delivery settings on Redis Sentinel: primary kill -9 and promotion, without and
with ``IMS_WORKER_REDIS_WAIT_REPLICAS``; and the replication loss window made deterministic.

Each scenario prints its table row for RELIABILITY.md and writes its JSON under bench/results/chaos/.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.celery_worker import ALL_QUEUES, wait_until
from tests.chaos.brokerrun import Workers, run
from tests.chaos.brokers import describe, make_event, still_queued
from tests.redis_topologies import MASTER, SentinelGroup, publish_taken, sentinel_group
from tests.servers import RedisServer
from worker.delivery.publish import Publisher
from worker.errors import BrokerUnavailable
from worker.redisconn import store_client
from worker.settings import Settings

pytestmark = pytest.mark.chaos


def kill_primary(group: SentinelGroup, restart_after: float = 3.0) -> Callable[[Workers], None]:
    """kill -9 the primary; ``restart_after`` s later bring it back (a pod restart), to become a replica."""

    def fault(_: Workers) -> None:
        victim = group.node(group.master_port())
        replica = next(n.port for n in group.nodes if n is not victim)
        victim.kill()
        time.sleep(restart_after)
        victim.start()
        group.wait_master(replica, timeout=60)

    return fault


@pytest.mark.parametrize("wait_replicas", [0, 1], ids=["async-replication", "wait-1-replica"])
def test_sentinel_primary_kill_9(wait_replicas: int, ledger: RedisServer, tmp_path: Path) -> None:
    with sentinel_group(tmp_path / "sentinel") as group:
        env = {
            "IMS_WORKER_BROKER_URL": group.url(),
            "IMS_WORKER_REDIS_SENTINEL_MASTER": MASTER,
            "IMS_WORKER_REDIS_SENTINEL_PASSWORD": group.sentinel_password,
            "IMS_WORKER_REDIS_WAIT_REPLICAS": str(wait_replicas),
        }
        settings = Settings(
            broker_url=group.url(),
            redis_sentinel_master=MASTER,
            redis_sentinel_password=group.sentinel_password,
            redis_wait_replicas=wait_replicas,
        )
        label = "async replication" if not wait_replicas else f"WAIT {wait_replicas} replica"
        outcome = run(
            "primary kill -9",
            "Redis Sentinel",
            label,
            settings,
            env,
            ledger,
            kill_primary(group),
            lambda: store_client(settings),
        )
    assert outcome.sent > 0, describe(outcome)
    # Asynchronous replication may lose what the primary took in its last moments, and nothing older. It may
    # also lose writes acknowledged after the failover (RELIABILITY.md, "Brokers"): reported, not asserted.
    assert all(at > -5.0 for at in outcome.lost_sent_after_fault_seconds), describe(outcome)
    if wait_replicas:
        assert outcome.lost == 0, describe(outcome)


@pytest.mark.parametrize("wait_replicas", [0, 1], ids=["async-replication", "wait-1-replica"])
def test_sentinel_replication_window(wait_replicas: int, tmp_path: Path) -> None:
    """The loss window made deterministic: the replica's link to the primary is cut and the replica frozen
    (SIGSTOP, before it reconnects) while a batch is published; then the primary is killed, the replica thawed
    and promoted, and the old primary restarted (it rejoins as a replica). Without WAIT the publish returned,
    so upstream was acknowledged, and the batch is gone; with WAIT the publish failed, upstream retries after
    the promotion and the batch is enqueued then."""
    with sentinel_group(tmp_path / "sentinel") as group:
        settings = Settings(
            broker_url=group.url(),
            redis_sentinel_master=MASTER,
            redis_sentinel_password=group.sentinel_password,
            redis_wait_replicas=wait_replicas,
            redis_wait_timeout_ms=300,
        )
        primary = group.node(group.master_port())
        replica = group.node(group.replica_port())
        assert replica.process is not None
        events = [make_event(uuid.uuid4().hex[:10], n) for n in range(5)]
        publisher = Publisher(settings)
        publisher.publish([make_event("warm-up", 0)])  # connected before the link is cut
        link = redis.Redis(host="127.0.0.1", port=replica.port, password=group.password)
        link.client_kill_filter(_type="master")
        os.kill(replica.process.pid, signal.SIGSTOP)
        link.close()
        try:
            try:
                publisher.publish(events)
                acknowledged = True
            except BrokerUnavailable:
                acknowledged = False
            primary.kill()
        finally:
            os.kill(replica.process.pid, signal.SIGCONT)
        group.wait_master(replica.port, timeout=60)
        primary.start()  # a pod restart: Sentinel turns it into a replica of the new primary
        if not acknowledged:  # upstream retries until the publish is taken, as MNS redelivery would
            wait_until(lambda: publish_taken(publisher, events), timeout=60, interval=0.3)
        publisher.close()
        client = store_client(settings)
        held = still_queued(client, list(ALL_QUEUES))
        client.close()
    kept = sum(1 for e in events if e.id in held)
    print(
        f"\nSentinel replication window, WAIT {wait_replicas}: publish acknowledged={acknowledged}, "
        f"{kept}/{len(events)} events on the promoted primary",
        flush=True,
    )
    if wait_replicas:
        assert not acknowledged and kept == len(events)
    else:
        assert acknowledged and kept == 0  # what asynchronous replication loses: acknowledged, then gone
