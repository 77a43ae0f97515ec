"""STS rotation end to end: ``ims-worker consume`` with no AccessKey setting, only
``ALIBABA_CLOUD_CREDENTIALS_URI`` (the emulator's rotating credentials URI), drains a steady stream while the
emulator refuses each credential shortly after its successor is issued.

Real parts: the consumer process, alibabacloud-credentials' default chain (environment, CLI profile and
profile files absent, the ECS metadata probe failing, then the credentials URI), the SDK signing with the
``security-token`` header, the emulator checking token and expiry, Redis and a Celery worker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.celery_worker import RECORDER, running_worker, wait_until
from tests.consumer_run import check_end_state, consumer_env, handled_once, mixed_workload, running_consumer
from tests.mns_emulator import InProcessEmulator, running_emulator

pytestmark = pytest.mark.integration
QUEUE = "ice-callback-test"
ROTATE_SECONDS = 2.0
GRACE_SECONDS = 1.0
ROTATIONS = 5


@pytest.fixture
def mns() -> Iterator[InProcessEmulator]:
    with running_emulator(queues=[QUEUE]) as handle:
        assert isinstance(handle, InProcessEmulator)
        yield handle


def chain_env(mns: InProcessEmulator, redis_url: str, home: Path) -> dict[str, str]:
    """The consumer's environment with no AccessKey setting: only the credentials URI."""
    env = consumer_env(mns, redis_url, QUEUE)
    del env["IMS_WORKER_MNS_ACCESS_KEY_ID"], env["IMS_WORKER_MNS_ACCESS_KEY_SECRET"]
    env["HOME"] = str(home)  # no ~/.aliyun or ~/.alibabacloud profile of the machine
    env["ALIBABA_CLOUD_CREDENTIALS_URI"] = mns.emulator.credentials_uri
    return env


def test_consumer_drains_through_rotations(mns: InProcessEmulator, redis_url: str, tmp_path: Path) -> None:
    """The URI reports Expiration = real expiry + 15 min: the library refreshes just in time by itself."""
    drain_through_rotations(mns, redis_url, tmp_path, "library-refreshes")


def drain_through_rotations(mns: InProcessEmulator, redis_url: str, tmp_path: Path, refresh: str) -> None:
    """A steady stream through more than ROTATIONS rotations; ``refresh``: "library-refreshes", or
    "consumer-retries-refused" (the URI reports a far expiration: the library would keep a refused token,
    so the consumer's "refused, fetch fresh credentials, retry" path must carry every rotation)."""
    extra = 900.0 if refresh == "library-refreshes" else 3600.0
    mns.emulator.sts.configure(
        rotate_seconds=ROTATE_SECONDS, grace_seconds=GRACE_SECONDS, advertised_extra_seconds=extra
    )
    work = mixed_workload(600)
    stop = threading.Event()

    def produce() -> None:  # a steady stream over the whole run, not one preloaded batch
        chunks = [work.bodies[i : i + 10] for i in range(0, len(work.bodies), 10)]
        for chunk in chunks:
            mns.send(QUEUE, chunk)
            if stop.wait(ROTATE_SECONDS * (ROTATIONS + 1) / len(chunks)):
                return

    worker_env = {"IMS_WORKER_BROKER_URL": redis_url, "IMS_WORKER_HANDLER_MODULES": RECORDER}
    with (
        running_worker(worker_env, concurrency=2),
        running_consumer(chain_env(mns, redis_url, tmp_path)) as consumer,
    ):
        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        try:
            wait_until(lambda: mns.emulator.sts.rotations > ROTATIONS, timeout=60)
            producer.join(timeout=60)
            wait_until(
                lambda: mns.stats(QUEUE).total == 0 and handled_once(redis_url, work)[0] == len(work.valid),
                timeout=60,
                interval=0.2,
            )
        finally:
            stop.set()
        assert consumer.process.poll() is None, consumer.output()  # never exited or restarted
        output = consumer.output()
    stats = mns.stats(QUEUE)
    assert stats.sent == stats.received == stats.deleted == len(work.bodies), stats  # none received twice
    check_end_state(redis_url, work, mns, QUEUE)
    assert "credentials URI (ALIBABA_CLOUD_CREDENTIALS_URI)" in output
    assert output.count('"mns.credentials.loaded"') > ROTATIONS
    assert "mns.poller.backoff" not in output and "mns.consumer.fatal" not in output, output
    refused = output.count('"mns.credentials.refused"')
    if refresh == "consumer-retries-refused":
        assert refused >= ROTATIONS, output
    for line in output.splitlines():  # what the URI handed out never reaches a log line
        assert '"AccessKeySecret"' not in line and '"SecurityToken"' not in line
    sts_secrets = [c.secret for c in mns.emulator.sts._issued.values()]
    sts_tokens = [c.token for c in mns.emulator.sts._issued.values()]
    assert not any(value in output for value in [*sts_secrets, *sts_tokens])


def test_rotation_refusal_counts_as_no_poller_failure(mns: InProcessEmulator) -> None:
    """The emulator's side of the contract: an old token is refused once its grace is over."""
    mns.emulator.sts.configure(rotate_seconds=1.0, grace_seconds=0.5)
    first = mns.emulator.sts.credentials_uri()
    time.sleep(1.6)
    second = mns.emulator.sts.credentials_uri()
    assert first["AccessKeyId"] != second["AccessKeyId"]
    old = mns.emulator.sts.lookup(first["AccessKeyId"])
    assert old is not None and old.expires_at <= time.time()
