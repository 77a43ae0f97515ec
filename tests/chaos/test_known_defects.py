"""Defects found by the chaos scenarios in third-party components, each reproduced on its own.

Celery 5.7.0: when the broker connection is lost, ``Consumer.on_connection_error_after_connected`` first calls
``connection.collect()`` (which closes the transport and sets ``transport.client = None``) and then
``connection.close()``. If the channel was waiting in BRPOP and holds unacknowledged messages (an acks-late
task running), the first close stopped at reading the BRPOP reply, so the second one tries to restore the
unacked messages, needs a new Redis client, reads ``transport.client.hostname`` and raises AttributeError,
which ``ignore_errors`` does not ignore: "Unrecoverable error", the worker process exits with 1. Celery 5.6.3
survives the same sequence. Nothing is lost (the messages stay in Redis and come back after the visibility
timeout), but every worker dies on a Redis restart unless something restarts it (``ims-worker run``,
systemd, Kubernetes); the redis-restart scenario therefore runs under ``ims-worker run``.

The project pins ``celery<5.7`` for this reason, and this test guards the pin: it fails on a Celery that has
the defect, so lifting the pin needs a version where it passes.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from tests.celery_worker import RECORDER, running_worker, wait_until
from tests.conftest import SAMPLES_DIR
from tests.servers import running_redis
from worker.delivery.publish import Publisher
from worker.providers import normalize
from worker.settings import load_settings

pytestmark = pytest.mark.chaos


def test_the_worker_survives_a_redis_restart_during_a_task(tmp_path: Path) -> None:
    with running_redis(tmp_path) as server:
        env = {"IMS_WORKER_BROKER_URL": server.url, "IMS_WORKER_HANDLER_MODULES": RECORDER}
        with running_worker(env, concurrency=2) as worker:
            event = normalize("ims", (SAMPLES_DIR / "ims" / "FileUploadComplete.json").read_bytes())[0]
            client = redis.Redis.from_url(server.url)
            client.set(f"test:slow:{event.id}", 4)  # the recorder's ``slow`` handler sleeps that long
            publisher = Publisher(load_settings(broker_url=server.url))
            publisher.publish([event])
            publisher.close()
            wait_until(lambda: client.get(f"test:started:{event.id}"), timeout=15)
            client.close()
            server.stop()  # one pool process busy, the other idle: the consumer waits in BRPOP
            time.sleep(2)
            server.start()
            time.sleep(5)
            assert worker.alive(), worker.output()[-3000:]
