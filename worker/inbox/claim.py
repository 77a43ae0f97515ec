"""``claim`` and ``aclaim``: record "(event, handler) applied" in the handler's own transaction."""

from __future__ import annotations

from typing import Any

from worker.inbox import drivers
from worker.inbox.context import Running, current
from worker.inbox.drivers import Kind

APPLIED, ALREADY, REAPPLIED = "applied", "already applied", "re-applied"


def _params(run: Running) -> dict[str, str]:
    return {"e": run.event_id, "h": run.handler, "t": run.task_id}


def _record(run: Running, inserted: bool, reapplied: bool) -> bool:
    run.claims.append(APPLIED if inserted else REAPPLIED if reapplied else ALREADY)
    return inserted or reapplied


def _sqlalchemy_text(sql: str) -> Any:
    from sqlalchemy import text  # noqa: PLC0415 - the optional extra, present when a SQLAlchemy object is

    return text(sql)


def claim(conn: Any, event: Any) -> bool:
    """Inside the handler's open transaction on ``conn``: True the first time this handler claims ``event``
    (go ahead: the claim commits or rolls back with your writes), False when this handler's claim for it
    already committed (the effect is applied: do nothing).

    ``conn``: a psycopg 3 ``Connection`` or a SQLAlchemy 2 ``Connection`` or ``Session``, in a transaction
    (async connections: ``aclaim``). The handler's name comes from the running task; the table is
    ``ims_worker_inbox`` (``ims-worker inbox init``). Raises ``InboxMisuse`` (a ``Permanent``) when called
    outside a handler or a transaction; database errors propagate (the attempt fails and is retried).
    """
    run = current(event.id)
    kind = drivers.kind_of(conn)
    if kind.is_async:
        raise drivers.misuse_async(kind)
    if kind is Kind.PSYCOPG:
        drivers.check_psycopg(conn, kind)
        sql = drivers.PSYCOPG_SQL

        def execute(name: str) -> bool:
            return conn.execute(sql[name], _params(run)).fetchone() is not None

    else:
        drivers.check_sqlalchemy(conn, kind)
        connection = conn.connection() if drivers.is_session(conn) else conn
        drivers.check_driver_autocommit(kind, connection.connection.dbapi_connection)

        def execute(name: str) -> bool:
            statement = _sqlalchemy_text(drivers.SQLALCHEMY_SQL[name])
            return conn.execute(statement, _params(run)).first() is not None

    if execute("claim"):
        return _record(run, True, False)
    return _record(run, False, run.reapply() and execute("reapply"))


async def aclaim(conn: Any, event: Any) -> bool:
    """``claim`` for ``async def`` handlers: a psycopg 3 ``AsyncConnection`` or a SQLAlchemy 2
    ``AsyncConnection`` or ``AsyncSession``, in a transaction."""
    run = current(event.id)
    kind = drivers.kind_of(conn)
    if not kind.is_async:
        raise drivers.misuse_sync(kind)
    if kind is Kind.PSYCOPG_ASYNC:
        drivers.check_psycopg(conn, kind)
        sql = drivers.PSYCOPG_SQL

        async def execute(name: str) -> bool:
            cursor = await conn.execute(sql[name], _params(run))
            return await cursor.fetchone() is not None

    else:
        drivers.check_sqlalchemy(conn, kind)
        connection = await conn.connection() if drivers.is_session(conn) else conn
        drivers.check_driver_autocommit(kind, connection.sync_connection.connection.dbapi_connection)

        async def execute(name: str) -> bool:
            statement = _sqlalchemy_text(drivers.SQLALCHEMY_SQL[name])
            return (await conn.execute(statement, _params(run))).first() is not None

    if await execute("claim"):
        return _record(run, True, False)
    return _record(run, False, run.reapply() and await execute("reapply"))
