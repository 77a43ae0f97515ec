"""Queue routing and the broker half of the Celery configuration, derived from ``Settings``.

The publishers (``worker.delivery.publish``: the Redis script and the kombu path) and the worker app
(``worker.execution.celeryconfig``, which adds the worker's own settings to ``broker_config``) take the queue
of an event and the queues' declarations from here, so a message sent by either lands on the queue the worker
consumes, declared with the same arguments.
"""

from __future__ import annotations

from typing import Any

from kombu.entity import Exchange, Queue

from worker.events.catalogue import CATALOGUE
from worker.providers import active as active_providers
from worker.providers import queue_for as source_queue
from worker.redisconn import broker_options
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


def declare_queue(name: str, *, quorum: bool = False) -> Queue:
    # The default exchange routes by queue name: no bindings to declare (AMQP) or look up (Redis restores).
    exchange = Exchange("")  # type: ignore[no-untyped-call]
    # Quorum queues (RabbitMQ) are replicated and survive a node loss; Celery then skips global QoS itself.
    arguments = {"x-queue-type": "quorum"} if quorum else None
    return Queue(name, exchange, routing_key=name, queue_arguments=arguments)  # type: ignore[no-untyped-call]


def task_routes(settings: Settings) -> dict[str, dict[str, str]]:
    return {name: {"queue": queue_for(settings, name, spec.source)} for name, spec in CATALOGUE.items()}


def lease_transport_options(visibility_timeout: int) -> dict[str, int]:
    """kombu Redis transport options for short, heartbeat-renewed leases (``worker.execution.lease``).

    A message held by a worker whose heartbeat stopped is put back by any live worker's event loop once its
    lease is ``visibility_timeout`` old; kombu looks for such messages every ``unacked_restore_interval`` s
    (10 s x a throttle of 10 by default: too rarely for a 60 s lease). The look is guarded by a Redis mutex
    that expires after 5 minutes by default: a worker killed while holding it would stall every restore that
    long, so it expires after a few restore intervals here."""
    interval = max(1, min(10, visibility_timeout // 6))
    return {
        "visibility_timeout": visibility_timeout,
        "unacked_restore_interval": interval,
        "unacked_restore_throttle": 1,
        "unacked_mutex_expire": max(5, 3 * interval),
    }


def broker_config(settings: Settings) -> dict[str, Any]:
    """What sending a task needs: the broker, its transport options, serialization, the queues and routes."""
    transport_options: dict[str, Any] = {}
    broker_use_ssl: dict[str, Any] | None = None
    if settings.broker_is_redis:
        # TLS files and the Sentinel master, the same as the store's connections (worker.redisconn).
        extra, broker_use_ssl = broker_options(settings)
        transport_options.update(extra)
        transport_options.update(lease_transport_options(settings.visibility_timeout))
        # Bodies stored as JSON text, not base64 (a third smaller), as ``worker.delivery.taskmessage`` writes
        # them.
        transport_options["body_encoding"] = "utf-8"
    else:
        # AMQP: publish returns only once the broker has the message (then upstream may be acknowledged).
        transport_options["confirm_publish"] = True
    quorum = settings.broker_quorum_queues and not settings.broker_is_redis
    return {
        "broker_url": settings.broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": transport_options,
        "broker_use_ssl": broker_use_ssl,
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        "result_backend": None,
        "task_send_sent_event": True,
        "task_queues": [declare_queue(name, quorum=quorum) for name in all_queues(settings)],
        "task_default_queue": source_queue(settings, "unknown"),
        "task_routes": task_routes(settings),
        "task_publish_retry_policy": {"max_retries": 1, "interval_start": 0, "interval_step": 0.2},
    }
