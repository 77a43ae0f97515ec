"""A test kit for handler plugins (also a pytest plugin, registered as ``ims_worker``).

* ``sample_event(type, **overrides)``: an ``Event`` of any catalogued type, built from the bundled provider
  samples (``worker/samples``) with top-level payload fields replaced (nested objects are merged), then
  normalized exactly as the consumer and the shim do.
* ``HandlerKit``: runs the registered handlers for an event in-process, through the real task wrapper, with a
  private real Redis: done markers, ``Retry`` (attempts run at once, countdowns are not waited),
  ``Permanent`` and exhausted attempts to the dead-letter store.
* pytest fixtures ``ims_redis_url`` (a private ``redis-server`` for the session) and ``ims_handlers`` (a
  ``HandlerKit`` on a flushed database), available as soon as ``ims-event-worker`` is installed;
  ``ims_postgres`` / ``ims_postgres_dsn``: a private PostgreSQL with the inbox table (``worker.inbox``),
  skipped with the reason where no server binaries are installed (``worker.testing.postgres``).
"""

from __future__ import annotations

from worker.testing.kit import HandlerKit, Outcome
from worker.testing.samples import sample_event, sample_payload, sample_types

__all__ = ["HandlerKit", "Outcome", "sample_event", "sample_payload", "sample_types"]
