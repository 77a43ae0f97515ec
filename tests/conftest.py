"""Shared fixtures. Integration tests talk to a private, real redis-server started here."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.servers import RedisServer, running_redis

SPOOL_DIR_VAR = "IMS_WORKER_SHIM_SPOOL_DIR"  # kept in the environment of subprocesses: see _shim_spool_dir
SAMPLES_DIR = Path(__file__).resolve().parent.parent / "worker" / "samples"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """A clean database on the session's private Redis (flushed before each test)."""
    if redis_server.process is None:  # a previous test stopped it to simulate an outage
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture(scope="session", autouse=True)
def _session_shim_spool_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Shims made by module-scoped fixtures keep their spool (worker.shim.spool) here, never in the cwd."""
    os.environ["IMS_WORKER_SHIM_SPOOL_DIR"] = str(tmp_path_factory.mktemp("shim-spool"))


@pytest.fixture(autouse=True)
def _shim_spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's own shims keep their spool in the test's directory."""
    monkeypatch.setenv("IMS_WORKER_SHIM_SPOOL_DIR", str(tmp_path / "shim-spool"))
