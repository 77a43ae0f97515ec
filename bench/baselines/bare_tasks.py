"""The bare-task baseline: a plain Celery task doing the same handler work as our wrapper, nothing more.

Same Celery configuration as ``worker.app`` (acks late, prefetch 1, task events, no results: taken from
``worker.execution.celeryconfig``) and the same logging pipeline (``worker.logging``), so that only the
wrapper differs:
no handler ledger, no log context binding, no registry dispatch, no classification of failures. The task
rebuilds the ``Event`` from the message (as our wrapper must) and calls the two handlers our wrapper runs for
an IMS event: the built-in ``handlers.ims.log_ims_event`` and the benchmark's ``record``.

``celery -A bench.baselines.bare_tasks worker -Q bare``; the broker is ``IMS_WORKER_BROKER_URL``.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, signals

from bench.baselines import BARE_QUEUE, BARE_TASK
from bench.plugin import record
from handlers.ims import log_ims_event
from worker.events import Event
from worker.execution.celeryconfig import celery_config, declare_queue
from worker.logging import configure_logging
from worker.settings import load_settings

_settings = load_settings()
app = Celery("bare")
app.conf.update(celery_config(_settings))
app.conf.update(task_queues=[declare_queue(BARE_QUEUE)], task_default_queue=BARE_QUEUE, task_routes={})


@signals.setup_logging.connect  # type: ignore[untyped-decorator]
def _logging(**_: Any) -> None:
    configure_logging(_settings)  # what worker.app does: the same JSON lines, at the same cost


@app.task(name=BARE_TASK)  # type: ignore[untyped-decorator]
def bare(payload: dict[str, Any]) -> None:
    event = Event.model_validate(payload)
    log_ims_event(event)
    record(event)
