"""``worker.inbox.claim`` / ``aclaim`` against a real private PostgreSQL (``ims_postgres``, worker.testing):
psycopg 3 and SQLAlchemy 2, sync and async; the row commits and rolls back with the handler's writes; every
misuse is a clear ``InboxMisuse``; the core never imports the drivers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from worker import inbox
from worker.inbox import InboxMisuse
from worker.testing import sample_event

EVENT = sample_event("ims.FileUploadComplete")
OTHER = sample_event("ims.FileUploadComplete", MessageBody={"MediaId": "another"})
H = "team.handlers:save"


def rows(dsn: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(dsn) as conn:
        found = conn.execute(
            "SELECT event_id, handler, task_id FROM ims_worker_inbox ORDER BY 1, 2"
        ).fetchall()
    return [(str(a), str(b), str(c)) for a, b, c in found]


@pytest.fixture
def conn(ims_postgres_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(ims_postgres_dsn, autocommit=True) as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS effects (event_id text)")
        connection.execute("TRUNCATE effects")
        yield connection


def apply(conn: psycopg.Connection[Any], event: Any = EVENT) -> bool:
    with conn.transaction():
        if not inbox.claim(conn, event):
            return False
        conn.execute("INSERT INTO effects VALUES (%s)", (event.id,))
    return True


def effects(conn: psycopg.Connection[Any]) -> int:
    return int(conn.execute("SELECT count(*) FROM effects").fetchone()[0])  # type: ignore[index]


def test_the_first_claim_applies_and_every_later_one_does_not(
    conn: psycopg.Connection[Any], ims_postgres_dsn: str
) -> None:
    with inbox.running(H, EVENT.id, "task-1"):
        assert apply(conn) is True
        assert apply(conn) is False
    with inbox.running(H, EVENT.id, "task-2"):  # a later task: a redelivery, a replay without --reapply
        assert apply(conn) is False
    with inbox.running("team.handlers:other", EVENT.id, "task-1"):  # per handler
        assert apply(conn) is True
    with inbox.running(H, OTHER.id, "task-3"):  # per event
        assert apply(conn, OTHER) is True
    assert effects(conn) == 3
    assert rows(ims_postgres_dsn) == sorted(
        [(EVENT.id, H, "task-1"), (EVENT.id, "team.handlers:other", "task-1"), (OTHER.id, H, "task-3")]
    )


def test_a_handler_that_raises_rolls_its_claim_back_and_the_retry_applies(
    conn: psycopg.Connection[Any], ims_postgres_dsn: str
) -> None:
    with inbox.running(H, EVENT.id, "task-1") as run:
        with pytest.raises(RuntimeError), conn.transaction():
            assert inbox.claim(conn, EVENT)
            conn.execute("INSERT INTO effects VALUES (%s)", (EVENT.id,))
            raise RuntimeError("the handler failed after its writes")
        assert rows(ims_postgres_dsn) == [] and effects(conn) == 0
        assert apply(conn) is True
    assert effects(conn) == 1
    assert run.claims == ["applied", "applied"]  # what the worker journals


def test_a_forced_re_run_applies_once_per_replay_task(
    conn: psycopg.Connection[Any], ims_postgres_dsn: str
) -> None:
    with inbox.running(H, EVENT.id, "task-1"):
        assert apply(conn)
    with inbox.running(H, EVENT.id, "replay-task", reapply=lambda: True) as run:
        assert apply(conn) is True  # `replay --reapply`
        assert apply(conn) is False  # the replay's own retry: its task id is in the row now
    assert run.claims == ["re-applied", "already applied"]
    assert rows(ims_postgres_dsn) == [(EVENT.id, H, "replay-task")]
    assert effects(conn) == 2


def test_misuse_is_a_clear_permanent_error(conn: psycopg.Connection[Any], ims_postgres_dsn: str) -> None:
    with pytest.raises(InboxMisuse, match="outside a handler run"), conn.transaction():
        inbox.claim(conn, EVENT)
    with inbox.running(H, EVENT.id, "task-1"):
        with pytest.raises(InboxMisuse, match=r"was given event .* running for"), conn.transaction():
            inbox.claim(conn, OTHER)
        with pytest.raises(
            InboxMisuse, match=r"no transaction is open\): call it inside `with conn.transaction"
        ):
            inbox.claim(conn, EVENT)  # autocommit, no transaction: the claim would commit on its own
        with psycopg.connect(ims_postgres_dsn) as plain, pytest.raises(InboxMisuse, match="no transaction"):
            inbox.claim(plain, EVENT)  # not autocommit, but nothing begun yet: nothing would commit it
        with pytest.raises(InboxMisuse, match="failed and must be rolled back"), conn.transaction():
            with pytest.raises(psycopg.errors.DivisionByZero):
                conn.execute("SELECT 1/0")
            inbox.claim(conn, EVENT)
        with pytest.raises(InboxMisuse, match=r"does not know a builtins\.object"):
            inbox.claim(object(), EVENT)
    assert issubclass(InboxMisuse, inbox.InboxError) and rows(ims_postgres_dsn) == []


def test_sqlalchemy_connection_and_session(ims_postgres_dsn: str) -> None:
    url = ims_postgres_dsn.replace("postgresql://", "postgresql+psycopg://")
    engine = sqlalchemy.create_engine(url)
    try:
        with inbox.running(H, EVENT.id, "task-1"):
            with engine.begin() as connection:
                assert inbox.claim(connection, EVENT) is True
            with Session(engine) as session, session.begin():
                assert inbox.claim(session, EVENT) is False
            with engine.connect() as connection, pytest.raises(InboxMisuse, match=r"conn.begin\(\)"):
                inbox.claim(connection, EVENT)
            with Session(engine) as session, pytest.raises(InboxMisuse, match="no transaction"):
                inbox.claim(session, EVENT)
            autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
            with autocommit.begin() as connection, pytest.raises(InboxMisuse, match="AUTOCOMMIT"):
                inbox.claim(connection, EVENT)
            with (
                engine.begin() as connection,
                pytest.raises(InboxMisuse, match=r"is not async: use `worker\.inbox\.claim"),
            ):
                asyncio.run(inbox.aclaim(connection, EVENT))
    finally:
        engine.dispose()
    assert rows(ims_postgres_dsn) == [(EVENT.id, H, "task-1")]


def test_async_psycopg_and_sqlalchemy(ims_postgres_dsn: str) -> None:
    url = ims_postgres_dsn.replace("postgresql://", "postgresql+psycopg://")

    async def scenario() -> list[bool]:
        answers = []
        with inbox.running(H, EVENT.id, "task-1"):
            async with await psycopg.AsyncConnection.connect(ims_postgres_dsn) as conn:
                async with conn.transaction():
                    answers.append(await inbox.aclaim(conn, EVENT))
                with pytest.raises(InboxMisuse, match="no transaction"):
                    await inbox.aclaim(conn, EVENT)
                sync_conn = psycopg.connect(ims_postgres_dsn)
                with sync_conn, pytest.raises(InboxMisuse, match=r"use `worker\.inbox\.claim"):
                    await inbox.aclaim(sync_conn, EVENT)
            engine = create_async_engine(url)
            try:
                async with engine.begin() as connection:
                    answers.append(await inbox.aclaim(connection, EVENT))
                async with AsyncSession(engine) as session, session.begin():
                    answers.append(await inbox.aclaim(session, EVENT))
                async with engine.begin() as connection:
                    with pytest.raises(InboxMisuse, match=r"await worker\.inbox\.aclaim"):
                        inbox.claim(connection, EVENT)
            finally:
                await engine.dispose()
        engine = create_async_engine(url)
        with inbox.running(H, OTHER.id, "task-2"):
            async with AsyncSession(engine) as session, session.begin():
                answers.append(await inbox.aclaim(session, OTHER))
        await engine.dispose()
        return answers

    assert asyncio.run(scenario()) == [True, False, False, True]
    assert rows(ims_postgres_dsn) == sorted([(EVENT.id, H, "task-1"), (OTHER.id, H, "task-2")])


def test_the_core_never_imports_the_database_drivers() -> None:
    code = (
        "import sys, worker, worker.inbox, worker.app, worker.execution.tasks, worker.cli.inbox, worker.cli;"
        "worker.cli.build_parser();"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('psycopg', 'sqlalchemy'));"
        "assert not bad, bad"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_shipped_schema_is_the_one_init_runs() -> None:
    from importlib.resources import files  # noqa: PLC0415

    shipped = files("worker.inbox").joinpath("schema.sql").read_text()
    assert inbox.schema_sql() == shipped
    assert (
        "CREATE TABLE IF NOT EXISTS ims_worker_inbox" in shipped
        and "PRIMARY KEY (event_id, handler)" in shipped
    )
