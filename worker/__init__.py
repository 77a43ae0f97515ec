"""ims-event-worker: IMS (via MNS) and media-provider webhooks, routed through Celery to handler plugins.

The public API for plugin authors is ``Event``, ``handler``, ``Retry`` and ``Permanent``, and ``inbox``
(``inbox.claim``: exactly-once effects for handlers that write to PostgreSQL).
"""

from __future__ import annotations

from worker import inbox
from worker.errors import BrokerUnavailable, ConfigurationError, InvalidPayload, Permanent, Retry, WorkerError
from worker.events import Event, Transport
from worker.execution.registry import handler
from worker.providers import normalize

__all__ = [
    "BrokerUnavailable",
    "ConfigurationError",
    "Event",
    "InvalidPayload",
    "Permanent",
    "Retry",
    "Transport",
    "WorkerError",
    "handler",
    "inbox",
    "normalize",
]
