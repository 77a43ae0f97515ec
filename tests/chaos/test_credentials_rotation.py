"""STS rotation, the hard ways (slow: ~40 s each, so in the chaos suite): every rotation carried by the
consumer's "refused, fetch fresh credentials, retry" path, and a credentials-service outage under load."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.celery_worker import RECORDER, running_worker, wait_until
from tests.consumer_run import check_end_state, handled_once, mixed_workload, running_consumer
from tests.mns_emulator import InProcessEmulator, running_emulator
from tests.test_mns_rotation import QUEUE, chain_env, drain_through_rotations

pytestmark = [pytest.mark.chaos, pytest.mark.integration]


@pytest.fixture
def mns() -> Iterator[InProcessEmulator]:
    with running_emulator(queues=[QUEUE]) as handle:
        assert isinstance(handle, InProcessEmulator)
        yield handle


def test_every_rotation_through_a_refused_token(
    mns: InProcessEmulator, redis_url: str, tmp_path: Path
) -> None:
    drain_through_rotations(mns, redis_url, tmp_path, "consumer-retries-refused")


def test_credentials_service_outage_changes_nothing(
    mns: InProcessEmulator, redis_url: str, tmp_path: Path
) -> None:
    """The credentials URI is down for a while; the credentials in hand are still valid: the consumer keeps
    using them, says so once, says once that it recovered, and the stream goes on without loss or repeat."""
    # Each credential is accepted 3 + 20 s; the library asks for a new one after 3 s (reported expiry 880 s
    # beyond the real one, it refreshes 900 s before: 20 s early). The outage (8 s) fits in the 20 s.
    mns.emulator.sts.configure(rotate_seconds=3.0, grace_seconds=20.0, advertised_extra_seconds=880.0)
    work = mixed_workload(300)
    chunks = [work.bodies[i : i + 10] for i in range(0, len(work.bodies), 10)]
    worker_env = {"IMS_WORKER_BROKER_URL": redis_url, "IMS_WORKER_HANDLER_MODULES": RECORDER}
    with (
        running_worker(worker_env, concurrency=2),
        running_consumer(chain_env(mns, redis_url, tmp_path)) as consumer,
    ):
        wait_until(lambda: "mns.consumer.started" in consumer.output(), timeout=60)
        for chunk in chunks[:10]:
            mns.send(QUEUE, chunk)
            time.sleep(0.1)
        mns.emulator.sts.outage = True
        for chunk in chunks[10:20]:  # sent and consumed during the outage
            mns.send(QUEUE, chunk)
            time.sleep(0.8)
        wait_until(lambda: '"mns.credentials.refresh_failed"' in consumer.output(), timeout=30)
        mns.emulator.sts.outage = False
        for chunk in chunks[20:]:
            mns.send(QUEUE, chunk)
            time.sleep(0.1)
        wait_until(
            lambda: mns.stats(QUEUE).total == 0 and handled_once(redis_url, work)[0] == len(work.valid),
            timeout=60,
            interval=0.2,
        )
        wait_until(lambda: '"mns.credentials.recovered"' in consumer.output(), timeout=30)
        assert consumer.process.poll() is None
        output = consumer.output()
    stats = mns.stats(QUEUE)
    assert stats.sent == stats.received == stats.deleted == len(work.bodies), stats
    check_end_state(redis_url, work, mns, QUEUE)
    assert output.count('"mns.credentials.refresh_failed"') == 1  # once per incident
    assert output.count('"mns.credentials.recovered"') == 1
    assert "mns.poller.backoff" not in output and "mns.credentials.refused" not in output, output
    assert "Traceback" not in output
