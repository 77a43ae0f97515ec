"""One broker scenario (test_brokers_rabbitmq.py, test_brokers_sentinel.py): a producer at a steady
rate, real Celery workers running the ledger plugin, one fault part-way through the load, then the verdict.

Each scenario prints its table row for RELIABILITY.md and writes its JSON under bench/results/chaos/.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable

import redis

from tests.celery_worker import ALL_QUEUES, CeleryWorker, running_worker
from tests.chaos.brokers import Outcome, Producer, describe, drain, verdict
from tests.chaos.spec import LEDGER_URL_ENV, PLUGIN
from tests.servers import RedisServer
from worker.settings import Settings

LOAD_SECONDS = float(os.environ.get("IMS_CHAOS_BROKER_LOAD_SECONDS", "12"))
RATE = 25.0  # events per second: well under what two pool processes handle, so a backlog means a fault
FAULT_AT = 0.4  # of the load phase


class Workers:
    """The Celery worker of a scenario; ``replace`` kill -9s it (main process and pool) and starts another."""

    def __init__(self, stack: contextlib.ExitStack, env: dict[str, str]) -> None:
        self.stack, self.env = stack, env
        self.current = self._start()

    def _start(self) -> CeleryWorker:
        return self.stack.enter_context(running_worker(self.env, queues=ALL_QUEUES, concurrency=2))

    def replace(self) -> None:
        self.current.kill()
        self.current = self._start()


def run(
    name: str,
    broker: str,
    label: str,
    settings: Settings,
    env: dict[str, str],
    ledger: RedisServer,
    fault: Callable[[Workers], None],
    store: Callable[[], redis.Redis] | None,
) -> Outcome:
    outcome = Outcome(name, broker, label)
    env = {"IMS_WORKER_HANDLER_MODULES": PLUGIN, LEDGER_URL_ENV: ledger.url, **env}
    ledger_client = redis.Redis.from_url(ledger.url)
    with contextlib.ExitStack() as stack:
        workers = Workers(stack, env)
        producer = Producer(settings, uuid.uuid4().hex[:10], RATE, LOAD_SECONDS)
        producer.start()
        time.sleep(LOAD_SECONDS * FAULT_AT)
        outcome.fault_at = time.time()
        fault(workers)
        producer.join(LOAD_SECONDS + 120)
        drain(ledger_client, producer.sent)
        verdict(outcome, producer, ledger_client, store, list(ALL_QUEUES))
        if outcome.lost or outcome.delayed:
            outcome.notes.append(workers.current.output()[-3000:])
    ledger_client.close()
    outcome.save()
    print(f"\n{outcome.row()}\n{describe(outcome)}", flush=True)
    return outcome
