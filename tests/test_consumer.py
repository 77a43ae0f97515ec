"""Acceptance of the MNS consumer: real ``ims-worker consume``, the emulator through the real SDK, real Redis
and a real Celery worker. Every scenario ends with the same end-state check."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.celery_worker import RECORDER, running_worker, wait_until
from tests.consumer_run import (
    Workload,
    check_end_state,
    consumer_env,
    handled_once,
    mixed_workload,
    running_consumer,
)
from tests.mns_emulator import InProcessEmulator, running_emulator
from tests.servers import RedisServer

pytestmark = pytest.mark.integration
QUEUE = "ice-callback-test"


@pytest.fixture
def mns() -> Iterator[InProcessEmulator]:
    with running_emulator(queues=[]) as handle:
        assert isinstance(handle, InProcessEmulator)
        # Short visibility: messages held by a killed consumer come back within the test.
        handle.create_queue(QUEUE, visibility_timeout=3)
        yield handle


def _load(mns: InProcessEmulator, total: int) -> Workload:
    work = mixed_workload(total)
    mns.send(QUEUE, work.bodies)
    return work


def _wait_drained(mns: InProcessEmulator, redis_url: str, work: Workload, timeout: float = 90) -> None:
    wait_until(lambda: mns.stats(QUEUE).total == 0 and handled_once(redis_url, work)[0] == len(work.valid),
               timeout=timeout, interval=0.2)  # fmt: skip


def test_thousand_mixed_events_each_handled_once(mns: InProcessEmulator, redis_url: str) -> None:
    work = _load(mns, 1000)
    with running_worker({"IMS_WORKER_BROKER_URL": redis_url, "IMS_WORKER_HANDLER_MODULES": RECORDER},
                        concurrency=2):  # fmt: skip
        with running_consumer(consumer_env(mns, redis_url, QUEUE)) as consumer:
            _wait_drained(mns, redis_url, work)
            assert consumer.terminate(timeout=15) == 0, consumer.output()
        check_end_state(redis_url, work, mns, QUEUE)
    # Each poller's "mns.progress" lines (the last at its stop) add up to the whole run.
    progress = [
        line
        for line in map(_json_line, consumer.output().splitlines())
        if line.get("event") == "mns.progress"
    ]
    assert sum(line["received"] for line in progress) == sum(line["deleted"] for line in progress) == 1000
    assert sum(line["published"] + line["duplicates"] for line in progress) == len(work.valid)


def _json_line(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def test_kill_9_mid_run_then_restart(mns: InProcessEmulator, redis_url: str) -> None:
    work = _load(mns, 1000)
    env = consumer_env(mns, redis_url, QUEUE)
    with running_worker({"IMS_WORKER_BROKER_URL": redis_url, "IMS_WORKER_HANDLER_MODULES": RECORDER},
                        concurrency=2):  # fmt: skip
        with running_consumer(env) as first:
            wait_until(lambda: mns.stats(QUEUE).deleted >= 100, timeout=30)
            first.kill()
        assert mns.stats(QUEUE).total > 0, "the kill came too late to test anything"
        with running_consumer(env) as second:
            _wait_drained(mns, redis_url, work)
            assert second.terminate(timeout=15) == 0
        check_end_state(redis_url, work, mns, QUEUE)


def test_emulator_faults_change_nothing(mns: InProcessEmulator, redis_url: str) -> None:
    work = _load(mns, 1000)
    mns.set_faults(error_rate=0.10, drop_rate=0.05, latency_ms=50, partial_delete_rate=0.05)
    env = consumer_env(mns, redis_url, QUEUE, IMS_WORKER_MNS_POLLERS_PER_QUEUE="4")
    with running_worker({"IMS_WORKER_BROKER_URL": redis_url, "IMS_WORKER_HANDLER_MODULES": RECORDER},
                        concurrency=2):  # fmt: skip
        with running_consumer(env) as consumer:
            _wait_drained(mns, redis_url, work, timeout=150)
            assert consumer.terminate(timeout=15) == 0
        injected = mns.injected()
        assert sum(injected.values()) > 0, "no fault was injected"
        check_end_state(redis_url, work, mns, QUEUE)
    assert "mns.poller.backoff" in consumer.output()


def test_redis_outage_deletes_nothing_and_loses_nothing(
    mns: InProcessEmulator, redis_server: RedisServer, redis_url: str
) -> None:
    work = _load(mns, 600)
    # The consumer drains 600 messages in well under a second on an idle machine: slow MNS down so that the
    # outage starts while most of the queue is still there (the check below needs messages left to keep).
    mns.set_faults(latency_ms=40)
    env = consumer_env(mns, redis_url, QUEUE)
    with running_consumer(env) as consumer:
        wait_until(lambda: mns.stats(QUEUE).deleted >= 50, timeout=30)
        redis_server.stop()
        mns.clear_faults()
        time.sleep(0.5)  # batches in flight when Redis stopped may still finish their delete
        deleted_during_outage = mns.stats(QUEUE).deleted
        time.sleep(3)
        assert mns.stats(QUEUE).deleted == deleted_during_outage, "deleted while the broker was down"
        assert mns.stats(QUEUE).total > 0
        redis_server.start()
        with running_worker({"IMS_WORKER_BROKER_URL": redis_url, "IMS_WORKER_HANDLER_MODULES": RECORDER},
                            concurrency=2):  # fmt: skip
            _wait_drained(mns, redis_url, work)
            assert consumer.terminate(timeout=15) == 0
            check_end_state(redis_url, work, mns, QUEUE)
    assert "broker-unavailable" in consumer.output()


def test_sigterm_exits_zero_within_grace_and_restart_finishes(mns: InProcessEmulator, redis_url: str) -> None:
    work = _load(mns, 1000)
    env = consumer_env(mns, redis_url, QUEUE, IMS_WORKER_CONSUMER_GRACE_SECONDS="5")
    with running_consumer(env) as first:
        wait_until(lambda: mns.stats(QUEUE).deleted >= 100, timeout=30)
        started = time.monotonic()
        assert first.terminate(timeout=10) == 0, first.output()
        assert time.monotonic() - started < 5
    assert mns.stats(QUEUE).total > 0
    with running_worker({"IMS_WORKER_BROKER_URL": redis_url, "IMS_WORKER_HANDLER_MODULES": RECORDER},
                        concurrency=2):  # fmt: skip
        with running_consumer(env) as second:
            _wait_drained(mns, redis_url, work)
            assert second.terminate(timeout=15) == 0
        check_end_state(redis_url, work, mns, QUEUE)


def test_sigterm_cuts_a_long_poll_short(mns: InProcessEmulator, redis_url: str) -> None:
    env = consumer_env(
        mns, redis_url, QUEUE, IMS_WORKER_MNS_WAIT_SECONDS="20", IMS_WORKER_MNS_SOCKET_TIMEOUT="30"
    )
    with running_consumer(env) as consumer:
        wait_until(lambda: "mns.consumer.started" in consumer.output(), timeout=15)
        time.sleep(1.0)  # every poller is now inside a 20 s long poll on an empty queue
        started = time.monotonic()
        assert consumer.terminate(timeout=10) == 0, consumer.output()
        assert time.monotonic() - started < 3
    receives = sum(n for op, n in mns.operations().items() if op.startswith("BatchReceiveMessage"))
    assert receives <= 2, f"the SDK re-sent an interrupted long poll: {mns.operations()}"


def test_missing_queue_is_a_configuration_error(mns: InProcessEmulator, redis_url: str) -> None:
    with running_consumer(consumer_env(mns, redis_url, "no-such-queue")) as consumer:
        assert consumer.process.wait(timeout=15) == 2
    assert "QueueNotExist" in consumer.output()


def test_wrong_secret_is_a_configuration_error(mns: InProcessEmulator, redis_url: str) -> None:
    env = consumer_env(mns, redis_url, QUEUE, IMS_WORKER_MNS_ACCESS_KEY_SECRET="wrong-secret-value")
    with running_consumer(env) as consumer:
        assert consumer.process.wait(timeout=15) == 2
    assert "SignatureDoesNotMatch" in consumer.output()
    assert "wrong-secret-value" not in consumer.output()


def test_health_and_metrics_endpoints(mns: InProcessEmulator, redis_url: str) -> None:
    import httpx  # noqa: PLC0415

    from tests.servers import free_port  # noqa: PLC0415

    work = _load(mns, 40)
    port = free_port()
    env = consumer_env(mns, redis_url, QUEUE, IMS_WORKER_CONSUMER_METRICS_PORT=str(port))
    with running_consumer(env) as consumer:
        wait_until(lambda: mns.stats(QUEUE).total == 0, timeout=30)
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert consumer.terminate(timeout=15) == 0
    assert health.status_code == 200 and health.json()["ok"] is True
    published = len(work.valid)
    assert f'ims_worker_mns_published_total{{queue="{QUEUE}"}} {published}.0' in metrics
    assert f'ims_worker_mns_deleted_total{{queue="{QUEUE}"}} 40.0' in metrics
    assert 'ims_worker_mns_dead_lettered_total{queue="ice-callback-test",reason="invalid-payload"}' in metrics


def test_a_message_past_the_dequeue_limit_is_dead_lettered(mns: InProcessEmulator, redis_url: str) -> None:
    from worker.delivery.deadletter import DeadLetterStore  # noqa: PLC0415

    work = mixed_workload(1)  # one valid IMS event
    mns.send(QUEUE, work.bodies)
    sdk_queue = mns.queue(QUEUE)
    for _ in range(2):  # two receives that never delete: the message keeps coming back
        sdk_queue.receive_message(1)
        time.sleep(3.2)  # the queue's visibility timeout
    env = consumer_env(mns, redis_url, QUEUE, IMS_WORKER_MNS_MAX_DEQUEUE_COUNT="2")
    with running_consumer(env) as consumer:
        wait_until(lambda: mns.stats(QUEUE).total == 0, timeout=30)
        assert consumer.terminate(timeout=15) == 0
    store = DeadLetterStore(redis_url)
    (entry,) = store.list()
    store.close()
    assert entry.reason == "dequeue-limit"
    assert entry.raw_text == work.bodies[0]
    assert entry.error == "DequeueCount 3 exceeds the limit 2"
    assert entry.attempts == 3
