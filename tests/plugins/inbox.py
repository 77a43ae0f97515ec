"""Handlers that write to PostgreSQL through ``worker.inbox`` (tests/test_inbox_worker.py, the inbox chaos
scenario). Loaded by a Celery worker through ``IMS_WORKER_HANDLER_MODULES=tests.plugins.inbox``.

* ``apply_upload`` (``ims.FileUploadComplete``): in one transaction, ``inbox.claim`` then one row in
  ``inbox_effects``; with ``IMS_TEST_INBOX_MODE=plain`` it skips the claim (the counter-scenario: the window
  ``claim`` closes is then open). After the commit it pushes ``"<pid> <event id> <unix time>"`` to the Redis
  list ``inboxtest:windows`` and sleeps ``IMS_TEST_INBOX_WINDOW`` seconds before returning: the window
  between the commit and the worker's done marker, made wide here (never in the product) so that a kill -9
  lands in it;
* ``apply_produced`` (``ims.ProduceMediaComplete``): the same as an ``async def`` handler (psycopg's
  ``AsyncConnection``, ``inbox.aclaim``); ``async:raise:<event id>`` in Redis makes it raise after its
  writes, once (the transaction must roll back, the retry apply the effect).
"""

from __future__ import annotations

import os
import time
from typing import Any

import psycopg
import redis

from worker import Event, handler, inbox
from worker.settings import load_settings

DSN_ENV, MODE_ENV, WINDOW_ENV = "IMS_TEST_INBOX_DSN", "IMS_TEST_INBOX_MODE", "IMS_TEST_INBOX_WINDOW"
WINDOWS_KEY = "inboxtest:windows"
EFFECTS_TABLE = """
CREATE TABLE IF NOT EXISTS inbox_effects (
    id bigserial PRIMARY KEY, event_id text NOT NULL, handler text NOT NULL, pid int NOT NULL,
    task_id text, at timestamptz NOT NULL DEFAULT now()
)"""
_INSERT = "INSERT INTO inbox_effects (event_id, handler, pid, task_id) VALUES (%s, %s, %s, %s)"

_per_process: dict[str, Any] = {}


def _conn() -> psycopg.Connection[Any]:
    # One connection per pool process (made after the fork); autocommit, so each `transaction()` block is
    # exactly one BEGIN ... COMMIT.
    if _per_process.get("pid") != os.getpid():
        _per_process.clear()
        _per_process.update(pid=os.getpid(), conn=psycopg.connect(os.environ[DSN_ENV], autocommit=True))
    conn: psycopg.Connection[Any] = _per_process["conn"]
    return conn


def _redis() -> redis.Redis:
    if _per_process.get("redis_pid") != os.getpid():
        _per_process.update(
            redis_pid=os.getpid(), redis=redis.Redis.from_url(load_settings().effective_redis_url)
        )
    client: redis.Redis = _per_process["redis"]
    return client


def _task_id() -> str | None:
    from celery import current_task  # noqa: PLC0415

    return current_task.request.id if current_task else None


@handler("ims.FileUploadComplete")
def apply_upload(event: Event) -> None:
    conn = _conn()
    with conn.transaction():
        if os.environ.get(MODE_ENV, "claim") == "claim" and not inbox.claim(conn, event):
            return  # already applied
        conn.execute(_INSERT, (event.id, "apply_upload", os.getpid(), _task_id()))
    window = float(os.environ.get(WINDOW_ENV, "0"))
    if window:
        _redis().rpush(WINDOWS_KEY, f"{os.getpid()} {event.id} {time.time()}")
        time.sleep(window)


@handler("ims.ProduceMediaComplete")
async def apply_produced(event: Event) -> None:
    dsn = os.environ[DSN_ENV]
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn, conn.transaction():
        if not await inbox.aclaim(conn, event):
            return
        await conn.execute(_INSERT, (event.id, "apply_produced", os.getpid(), _task_id()))
        if _redis().delete(f"async:raise:{event.id}"):
            raise RuntimeError("raised after the writes: they roll back with the claim")
