"""Celery configuration derived from ``Settings``: routing and the reliability settings of DESIGN.md.

Shared by the worker app (``worker.app``) and the non-Redis publishing path (``worker.publish``), so a message
sent by either lands on the queue the worker consumes, declared with the same arguments.
"""

from __future__ import annotations

from typing import Any

from kombu.entity import Exchange, Queue

from worker.events.catalogue import CATALOGUE
from worker.providers import active as active_providers
from worker.providers import queue_for as source_queue
from worker.settings import Settings

UNKNOWN_PREFIX = "unknown."


def queue_for(settings: Settings, event_type: str, source: str) -> str:
    """The queue of an event: its source's queue; ``unknown.*`` events share the ``unknown`` queue."""
    if event_type.startswith(UNKNOWN_PREFIX):
        return source_queue(settings, "unknown")
    return source_queue(settings, source)


def all_queues(settings: Settings) -> list[str]:
    # Every provider this process routes, plugin providers included (loaded by worker.app).
    names = {source_queue(settings, spec.name) for spec in active_providers(settings)}
    names.add(source_queue(settings, "unknown"))
    return sorted(names)


def declare_queue(name: str) -> Queue:
    # The default exchange routes by queue name: no bindings to declare (AMQP) or look up (Redis restores).
    exchange = Exchange("")  # type: ignore[no-untyped-call]
    return Queue(name, exchange, routing_key=name)  # type: ignore[no-untyped-call]


def task_routes(settings: Settings) -> dict[str, dict[str, str]]:
    return {name: {"queue": queue_for(settings, name, spec.source)} for name, spec in CATALOGUE.items()}


def celery_config(settings: Settings) -> dict[str, Any]:
    transport_options: dict[str, Any] = {}
    if settings.broker_is_redis:
        # Unacked messages come back after this long; it outlasts a task plus its longest retry countdown.
        transport_options["visibility_timeout"] = settings.visibility_timeout
        if settings.visibility_timeout < 600:
            # kombu sweeps for expired messages only every ~100 s by default; keep pace with a short timeout.
            transport_options["unacked_restore_interval"] = max(1, settings.visibility_timeout // 4)
            transport_options["unacked_restore_throttle"] = 1
    else:
        # AMQP: publish returns only once the broker has the message (then upstream may be acknowledged).
        transport_options["confirm_publish"] = True
    return {
        "broker_url": settings.broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": transport_options,
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        "result_backend": None,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # A hard time limit kills the child: requeue, so the redelivery cap (not a silent ack) decides.
        "task_acks_on_timeout": False,
        "worker_prefetch_multiplier": 1,
        # Lost connection: the broker redelivers acks-late tasks anyway, so stop running them here.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "task_send_sent_event": True,
        "worker_send_task_events": True,
        "task_soft_time_limit": settings.task_soft_time_limit,
        "task_time_limit": settings.task_time_limit,
        "task_queues": [declare_queue(name) for name in all_queues(settings)],
        "task_default_queue": source_queue(settings, "unknown"),
        "task_routes": task_routes(settings),
        "task_publish_retry_policy": {"max_retries": 1, "interval_start": 0, "interval_step": 0.2},
    }
