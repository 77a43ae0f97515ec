"""The bare-task baseline: a plain Celery task doing the same handler work as our wrapper, nothing more.

Same Celery configuration as ``worker.app`` (acks late, prefetch 1, task events, no results: taken from
``worker.celeryconfig``) so that only the wrapper differs: no dedupe ledger, no structured logging, no
registry dispatch. The task rebuilds the ``Event`` from the message (as our wrapper must) and calls the
benchmark handler. ``celery -A bench.baselines.bare_tasks worker -Q bare``; the broker is
``IMS_WORKER_BROKER_URL``.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from bench.baselines import BARE_QUEUE, BARE_TASK
from bench.plugin import record
from worker.celeryconfig import celery_config, declare_queue
from worker.events import Event
from worker.settings import load_settings

_settings = load_settings()
app = Celery("bare")
app.conf.update(celery_config(_settings))
app.conf.update(task_queues=[declare_queue(BARE_QUEUE)], task_default_queue=BARE_QUEUE, task_routes={})


@app.task(name=BARE_TASK)  # type: ignore[untyped-decorator]
def bare(payload: dict[str, Any]) -> None:
    record(Event.model_validate(payload))
