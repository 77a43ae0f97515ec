"""MNS is the buffer, not Redis: with no worker running, the consumer stops receiving at the high-water mark
and leaves the rest in MNS; once a worker drains below the low-water mark it resumes, and every event is
handled once. Real ``ims-worker consume``, the emulator through the real SDK, real Redis, real Celery worker.
(The 100,000-message version at default settings is ``bench/backpressure_bench.py``.)"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from tests.celery_worker import RECORDER, running_worker, wait_until
from tests.consumer_run import check_end_state, consumer_env, handled_once, mixed_workload, running_consumer
from tests.mns_emulator import InProcessEmulator, running_emulator
from tests.servers import free_port

pytestmark = pytest.mark.integration
QUEUE = "ice-backpressure-test"
HIGH, LOW, POLLERS, BATCH = 200, 100, 2, 16


@pytest.fixture
def mns() -> Iterator[InProcessEmulator]:
    with running_emulator(queues=[]) as handle:
        assert isinstance(handle, InProcessEmulator)
        handle.create_queue(QUEUE, visibility_timeout=30)
        yield handle


def backlog(client: redis.Redis) -> int:
    return int(client.llen("ims")) + int(client.llen("unknown"))


def test_the_consumer_pauses_at_high_water_and_resumes_below_low_water(
    mns: InProcessEmulator, redis_url: str
) -> None:
    work = mixed_workload(2000)
    mns.send(QUEUE, work.bodies)
    metrics_port = free_port()
    env = consumer_env(
        mns,
        redis_url,
        QUEUE,
        IMS_WORKER_CONSUMER_HIGH_WATER=str(HIGH),
        IMS_WORKER_CONSUMER_LOW_WATER=str(LOW),
        IMS_WORKER_MNS_POLLERS_PER_QUEUE=str(POLLERS),
        IMS_WORKER_MNS_BATCH_SIZE=str(BATCH),
        IMS_WORKER_CONSUMER_METRICS_PORT=str(metrics_port),
    )
    client = redis.Redis.from_url(redis_url)
    with running_consumer(env) as consumer:
        wait_until(lambda: "mns.backpressure.paused" in consumer.output(), timeout=30, interval=0.1)
        peak = 0
        for _ in range(20):  # two seconds: four backlog checks of the pollers
            peak = max(peak, backlog(client))
            time.sleep(0.1)
        assert HIGH <= peak <= HIGH + POLLERS * BATCH
        in_mns = mns.stats(QUEUE).total
        assert in_mns >= len(work.bodies) - HIGH - POLLERS * BATCH - len(work.garbage)
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert "ims_worker_mns_paused 1.0" in scraped
        assert 'ims_worker_mns_backlog{queue="ims"}' in scraped

        with running_worker({"IMS_WORKER_BROKER_URL": redis_url, "IMS_WORKER_HANDLER_MODULES": RECORDER},
                            concurrency=2):  # fmt: skip
            done = lambda: mns.stats(QUEUE).total == 0 and handled_once(redis_url, work)[0] == len(work.valid)  # noqa: E731
            wait_until(done, timeout=120, interval=0.3)
            assert consumer.terminate(timeout=15) == 0, consumer.output()
            check_end_state(redis_url, work, mns, QUEUE)
    lines = [json.loads(line) for line in consumer.output().splitlines() if line.startswith("{")]
    events = [line["event"] for line in lines if line.get("event", "").startswith("mns.backpressure")]
    assert events[:2] == ["mns.backpressure.paused", "mns.backpressure.resumed"]
    paused = next(line for line in lines if line.get("event") == "mns.backpressure.paused")
    assert paused["reason"] == "backlog" and paused["high_water"] == HIGH
    client.close()
