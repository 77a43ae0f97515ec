"""ims-event-worker: IMS (via MNS) and media-provider webhooks, routed through Celery to handler plugins.

The public API for plugin authors, and all that ``worker`` exports: ``Event``, ``handler``, ``Retry``,
``Permanent`` and ``inbox`` (``inbox.claim``: exactly-once effects for handlers that write to PostgreSQL).
Everything else is the engine's own (``worker.errors``, ``worker.events``, ``worker.providers``...).
"""

from __future__ import annotations

from worker import inbox
from worker.errors import Permanent, Retry
from worker.events import Event
from worker.execution.registry import handler

__all__ = ["Event", "Permanent", "Retry", "handler", "inbox"]
