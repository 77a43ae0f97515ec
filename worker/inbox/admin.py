"""The inbox table's life: create it (idempotent) and delete old rows in bounded batches (psycopg 3).

``ims-worker inbox init`` / ``purge`` call these; psycopg is imported when they run (the extra
``ims-event-worker[postgres]``), never when the worker starts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from worker.errors import ConfigurationError
from worker.inbox import schema_sql
from worker.inbox.context import InboxError
from worker.inbox.drivers import TABLE

# The cutoff is fixed once (rows applied after the purge started are never candidates, so the loop ends),
# and each batch is its own transaction: a long purge neither holds locks nor bloats one transaction.
_CUTOFF = "SELECT now() - make_interval(secs => %s)"
_PURGE_BATCH = (
    f"DELETE FROM {TABLE} WHERE ctid IN "  # noqa: S608 - a constant table name; values are parameters
    f"(SELECT ctid FROM {TABLE} WHERE applied_at < %s LIMIT %s FOR UPDATE SKIP LOCKED)"
)


def _psycopg() -> Any:
    try:
        import psycopg  # noqa: PLC0415 - the optional extra
    except ImportError as exc:
        raise ConfigurationError(
            "`ims-worker inbox` needs psycopg: pip install 'ims-event-worker[postgres]'"
        ) from exc
    return psycopg


@contextlib.contextmanager
def connect(dsn: str, *, timeout: float = 10.0) -> Iterator[Any]:
    """An autocommit psycopg connection (``dsn`` "" uses libpq's PG* environment variables); psycopg's errors
    come out as ``InboxError`` (its message, which never holds the password)."""
    psycopg = _psycopg()
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=max(1, int(timeout))) as conn:
            yield conn
    except psycopg.Error as exc:
        raise InboxError(str(exc).strip() or type(exc).__name__) from exc


def init(dsn: str) -> None:
    """Create the table and its index if missing (``schema_sql()``, the shipped ``schema.sql``)."""
    with connect(dsn) as conn, conn.transaction():
        conn.execute(schema_sql())


def purge(
    dsn: str, older_than_seconds: float, *, batch: int, progress: Callable[[int], None] | None = None
) -> int:
    """Delete rows applied more than ``older_than_seconds`` ago, ``batch`` rows per transaction; returns how
    many were deleted."""
    deleted = 0
    with connect(dsn) as conn:
        (cutoff,) = conn.execute(_CUTOFF, (older_than_seconds,)).fetchone()
        while True:
            count = int(conn.execute(_PURGE_BATCH, (cutoff, batch)).rowcount)
            deleted += count
            if progress is not None and count:
                progress(deleted)
            if count < batch:
                return deleted
