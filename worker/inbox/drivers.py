"""The connections ``claim`` accepts, recognised by their classes' modules and names (never imported here:
psycopg and SQLAlchemy are the optional extra ``postgres``, and the core must load without them).

psycopg 3 ``Connection`` / ``AsyncConnection``; SQLAlchemy 2 ``Connection`` / ``Session`` and their asyncio
``AsyncConnection`` / ``AsyncSession``. Each must have a transaction open, so that the inbox row commits or
rolls back with the handler's own writes.
"""

from __future__ import annotations

import enum
from typing import Any

from worker.inbox.context import InboxMisuse

TABLE = "ims_worker_inbox"
# The first run of (event, handler) inserts its row; any later one finds it and does nothing.
_CLAIM = (
    f"INSERT INTO {TABLE} (event_id, handler, task_id) VALUES ({{e}}, {{h}}, {{t}}) "  # noqa: S608 - constant
    "ON CONFLICT (event_id, handler) DO NOTHING RETURNING 1"
)
# An operator's forced re-run: once per replay task (its Celery retries keep the task id, so a retry of a
# re-run that committed finds its own task id in the row and does nothing).
_REAPPLY = (
    f"UPDATE {TABLE} SET task_id = {{t}}, applied_at = now() "  # noqa: S608 - constant table name
    "WHERE event_id = {e} AND handler = {h} AND task_id <> {t} RETURNING 1"
)
PSYCOPG_SQL = {"claim": _CLAIM.format(e="%(e)s", h="%(h)s", t="%(t)s")}
PSYCOPG_SQL["reapply"] = _REAPPLY.format(e="%(e)s", h="%(h)s", t="%(t)s")
SQLALCHEMY_SQL = {"claim": _CLAIM.format(e=":e", h=":h", t=":t")}
SQLALCHEMY_SQL["reapply"] = _REAPPLY.format(e=":e", h=":h", t=":t")

_PSYCOPG_INTRANS, _PSYCOPG_INERROR = 2, 3  # psycopg.pq.TransactionStatus


class Kind(enum.Enum):
    PSYCOPG = "psycopg Connection"
    PSYCOPG_ASYNC = "psycopg AsyncConnection"
    SQLALCHEMY = "SQLAlchemy Connection or Session"
    SQLALCHEMY_ASYNC = "SQLAlchemy AsyncConnection or AsyncSession"

    @property
    def is_async(self) -> bool:
        return self in (Kind.PSYCOPG_ASYNC, Kind.SQLALCHEMY_ASYNC)


def kind_of(conn: object) -> Kind:
    classes = type(conn).__mro__
    names = {cls.__name__ for cls in classes}
    if any(cls.__module__.split(".")[0] == "psycopg" for cls in classes):
        if "AsyncConnection" in names:
            return Kind.PSYCOPG_ASYNC
        if "Connection" in names:
            return Kind.PSYCOPG
    if any(cls.__module__.split(".")[0] == "sqlalchemy" for cls in classes):
        if names & {"AsyncConnection", "AsyncSession"}:
            return Kind.SQLALCHEMY_ASYNC
        if names & {"Connection", "Session"}:
            return Kind.SQLALCHEMY
    raise InboxMisuse(
        f"worker.inbox.claim does not know a {type(conn).__module__}.{type(conn).__qualname__}: pass a "
        "psycopg 3 Connection or AsyncConnection, or a SQLAlchemy 2 Connection, Session, AsyncConnection or "
        "AsyncSession"
    )


def is_session(conn: object) -> bool:
    """A SQLAlchemy (Async)Session rather than a Connection: its connection is asked for."""
    return any(cls.__name__ in ("Session", "AsyncSession") for cls in type(conn).__mro__)


def _outside(kind: Kind, why: str) -> InboxMisuse:
    how = (
        "inside `with conn.transaction():`"
        if kind in (Kind.PSYCOPG, Kind.PSYCOPG_ASYNC)
        else "inside `with conn.begin():` (or `session.begin()`)"
    )
    return InboxMisuse(
        f"worker.inbox.claim needs an open transaction on the {kind.value} ({why}): call it {how}, so that "
        "the inbox row commits or rolls back with the handler's writes"
    )


def check_psycopg(conn: Any, kind: Kind) -> None:
    status = int(conn.info.transaction_status)
    if status == _PSYCOPG_INERROR:
        raise _outside(kind, "its transaction failed and must be rolled back first")
    if status != _PSYCOPG_INTRANS:
        raise _outside(kind, "no transaction is open")


def check_sqlalchemy(conn: Any, kind: Kind) -> None:
    if not conn.in_transaction():
        raise _outside(kind, "no transaction is open")


def check_driver_autocommit(kind: Kind, dbapi_connection: object) -> None:
    """SQLAlchemy's AUTOCOMMIT isolation level: begin() opens nothing in the database, each statement commits
    on its own, and the inbox row would commit even if the handler's writes did not."""
    if getattr(dbapi_connection, "autocommit", False) is True:
        raise _outside(kind, "its isolation level is AUTOCOMMIT")


def misuse_async(kind: Kind) -> InboxMisuse:
    return InboxMisuse(f"a {kind.value} is async: use `await worker.inbox.aclaim(conn, event)`")


def misuse_sync(kind: Kind) -> InboxMisuse:
    return InboxMisuse(f"a {kind.value} is not async: use `worker.inbox.claim(conn, event)`")
