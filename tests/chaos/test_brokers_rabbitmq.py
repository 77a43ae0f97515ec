"""Broker chaos at default delivery settings on RabbitMQ (a private node): worker kill -9, broker restart.

Each scenario prints its table row for RELIABILITY.md and writes its JSON under bench/results/chaos/.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.chaos.brokerrun import Workers, run
from tests.chaos.brokers import Outcome, describe
from tests.chaos.rabbit import PrivateRabbit
from tests.servers import RedisServer, running_redis
from worker.settings import Settings

pytestmark = pytest.mark.chaos


@pytest.fixture
def rabbit(tmp_path: Path) -> Iterator[PrivateRabbit]:
    node = PrivateRabbit(tmp_path / "rabbit")
    node.start()
    try:
        yield node
    finally:
        node.stop()


def rabbit_run(
    name: str, rabbit: PrivateRabbit, ledger: RedisServer, tmp_path: Path, fault: Callable[[Workers], None]
) -> Outcome:
    with running_redis(tmp_path / "store", appendonly=True) as store:
        env = {"IMS_WORKER_BROKER_URL": rabbit.url, "IMS_WORKER_REDIS_URL": store.url}
        settings = Settings(broker_url=rabbit.url, redis_url=store.url)
        outcome = run(name, "RabbitMQ", "quorum queues, confirms", settings, env, ledger, fault, None)
    assert set(rabbit.queue_types().values()) == {"quorum"}, rabbit.queue_types()
    return outcome


def test_rabbitmq_worker_kill_9(rabbit: PrivateRabbit, ledger: RedisServer, tmp_path: Path) -> None:
    outcome = rabbit_run("worker kill -9", rabbit, ledger, tmp_path, lambda workers: workers.replace())
    assert outcome.sent > 0 and outcome.lost == 0 and outcome.delayed == 0, describe(outcome)
    assert outcome.recovery_seconds is not None


def test_rabbitmq_broker_restart(rabbit: PrivateRabbit, ledger: RedisServer, tmp_path: Path) -> None:
    def restart(_: Workers) -> None:
        down = rabbit.restart()
        print(f"RabbitMQ node {rabbit.name} restarted: unreachable for {down:.1f} s", flush=True)

    outcome = rabbit_run("broker restart", rabbit, ledger, tmp_path, restart)
    assert outcome.sent > 0 and outcome.lost == 0 and outcome.delayed == 0, describe(outcome)
    assert outcome.recovery_seconds is not None
