"""Exactly-once effects for handlers that write to PostgreSQL: the inbox (README, "Writing a handler").

A handler calls ``claim(conn, event)`` inside its own database transaction before its writes; the row
``(event id, handler)`` commits or rolls back with them, so a handler re-run after a crash (its Redis done
marker never written) finds the row and does nothing::

    @handler("ims.ProduceMediaComplete")
    def save(event: Event) -> None:
        with psycopg.connect(DSN) as conn, conn.transaction():
            if not inbox.claim(conn, event):
                return  # already applied
            conn.execute("UPDATE media SET status = 'produced' WHERE id = %s", (media_id,))

psycopg and SQLAlchemy are never imported here (the extra ``ims-event-worker[postgres]``): the connection
passed in is recognised by its class. The table: ``schema_sql()`` / ``ims-worker inbox init``.
"""

from __future__ import annotations

from importlib.resources import files

from worker.inbox.claim import aclaim, claim
from worker.inbox.context import InboxError, InboxMisuse, running
from worker.inbox.drivers import TABLE


def schema_sql() -> str:
    """The idempotent DDL of the inbox table (also shipped as ``worker/inbox/schema.sql``)."""
    return files("worker.inbox").joinpath("schema.sql").read_text(encoding="utf-8")


__all__ = ["TABLE", "InboxError", "InboxMisuse", "aclaim", "claim", "running", "schema_sql"]
