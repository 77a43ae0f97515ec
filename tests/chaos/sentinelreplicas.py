"""Two shim replicas and a Celery worker on a Sentinel-managed Redis (a primary, one replica, two Sentinels:
``tests/redis_topologies.py``), with ``IMS_WORKER_REDIS_WAIT_REPLICAS=1``, which the docs require with
Sentinel (without it a failover can lose acknowledged events: RELIABILITY.md, "Brokers"). The ledger stream
is kept on a Redis the failover does not touch, so that the evidence cannot go with lost writes."""

from __future__ import annotations

import time
from pathlib import Path

import redis

from tests.chaos.ledger import Faults, Run, read_ledger
from tests.chaos.replicas import ReplicaStack
from tests.chaos.spec import LEDGER_URL_ENV
from tests.chaos.stack import Keys
from tests.redis_topologies import MASTER, SentinelGroup
from tests.servers import RedisServer
from worker.delivery.deadletter import DeadLetter, DeadLetterStore


class SentinelReplicaStack(ReplicaStack):
    def __init__(self, workdir: Path, keys: Keys, *, extra_env: dict[str, str] | None = None) -> None:
        super().__init__(workdir, keys, extra_env=extra_env)
        self.group = SentinelGroup(workdir / "sentinel", "master-pw-7d2c", "sentinel-pw-41be")
        self.ledger = RedisServer(workdir=workdir / "ledger", appendonly=True)

    @property
    def redis_url(self) -> str:
        """The current primary (the ledger check and the idle check read it directly)."""
        return f"redis://:{self.group.password}@127.0.0.1:{self.group.master_port()}/0"

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(
            {
                "IMS_WORKER_BROKER_URL": self.group.url(),
                "IMS_WORKER_REDIS_SENTINEL_MASTER": MASTER,
                "IMS_WORKER_REDIS_SENTINEL_PASSWORD": self.group.sentinel_password,
                "IMS_WORKER_REDIS_WAIT_REPLICAS": "1",
                LEDGER_URL_ENV: self.ledger.url,
            }
        )
        return env

    def start(self, *, shim_only: bool = False) -> None:
        self.group.start()
        self.ledger.start()
        self.services["worker"] = self.worker_service("worker")
        for name in ("shim-a", "shim-b"):
            self.services[name] = self.replica(name)
        for service in self.services.values():
            service.start()
        self.wait_ready()

    def stop(self) -> dict[str, int | None]:
        codes = {name: service.stop() for name, service in self.services.items()}
        self.group.stop()
        self.ledger.stop()
        return codes

    def results(self) -> tuple[list[Run], list[DeadLetter]]:
        ledger = redis.Redis.from_url(self.ledger.url)
        primary = redis.Redis.from_url(self.redis_url)
        try:
            return read_ledger(ledger), DeadLetterStore(primary).list()
        finally:
            ledger.close()
            primary.close()


def primary_killed(stack: ReplicaStack, faults: Faults, note: object) -> None:
    """kill -9 of the primary; it comes back 3 s later and rejoins as a replica, as a restarted pod would.
    With ``WAIT 1`` nothing is acknowledged until the promoted primary has a replica in sync again: the shims
    spool meanwhile."""
    assert isinstance(stack, SentinelReplicaStack) and callable(note)
    time.sleep(4.0)
    group = stack.group
    old = group.master_port()
    began = time.time()
    faults.outages.append((began, began + 3600))
    group.node(old).kill()
    note(f"primary :{old} kill -9")
    time.sleep(3.0)
    group.node(old).start()
    note(f"old primary :{old} restarted")
    new = next(n.port for n in group.nodes if n.port != old)
    group.wait_master(new, timeout=60)
    note(f"sentinels report :{new} as the primary")
    group.wait_replicated(old, timeout=60)
    faults.outages[-1] = (began, time.time())
    note(f":{old} in sync as its replica: WAIT 1 is satisfied again")
