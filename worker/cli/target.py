"""Which Redis the read and repair commands ask, and saying so.

``trace``, ``events recent``, ``dlq`` and ``replay`` read the journal and the dead letters in Redis. With
``IMS_WORKER_BROKER_URL`` (or ``IMS_WORKER_REDIS_URL``) set, they ask that Redis. Without it:

1. a running ``ims-worker run`` in this directory left its embedded Redis's address in
   ``<state_dir>/embedded.env``: they ask that one (``make run`` in one shell, ``ims-worker trace`` in
   another);
2. else, for the read-only commands, the data of the last ``ims-worker run`` here (kept under the state
   directory after it stopped: ``make demo`` exits once the demo is done) is served by a private Redis started
   for this one command, then stopped;
3. else the default, ``redis://127.0.0.1:6379/0``.

Unless the Redis is configured, each command says first, on stderr, which Redis it asks and why
(``ims-worker trace: reading redis://127.0.0.1:41234/0, the Redis of the running `ims-worker run` (from
.ims-worker/embedded.env)``); an empty or failed answer names it in every case, so it is never a mystery.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from worker.devtools.embedded import ENV_FILE_NAME, EmbeddedRedis
from worker.logging import configure_logging
from worker.redact import redact_url
from worker.settings import Settings, load_settings

STORE_FIELDS = ("broker_url", "redis_url")
CONFIGURED = "as configured"
DATA_DIRS = ("demo/redis", "redis")  # what `ims-worker run --demo` and `ims-worker run` keep (embedded.py)


@dataclass(frozen=True)
class Target:
    settings: Settings
    why: str

    @property
    def url(self) -> str:
        return redact_url(self.settings.effective_redis_url)

    def describe(self) -> str:
        return f"{self.url}, {self.why}"


def _env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            values[key.strip()] = value.strip()
    return values


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def _running(settings: Settings) -> Target | None:
    path = Path(settings.state_dir) / ENV_FILE_NAME
    if not path.is_file():
        return None
    values = _env_file(path)
    url = values.get("IMS_WORKER_BROKER_URL")
    if not url or not _answers(url):
        return None  # left behind by a run that was killed: its Redis is gone
    found = load_settings(broker_url=url, redis_url=values.get("IMS_WORKER_REDIS_URL", url))
    return Target(found, f"the Redis of the running `ims-worker run` (from {path})")


def _kept_data(settings: Settings) -> Path | None:
    """The most recently written data directory of an embedded Redis under the state directory."""
    found = []
    for name in DATA_DIRS:
        workdir = Path(settings.state_dir) / name
        if not workdir.is_dir():
            continue
        files = [f for f in workdir.rglob("*") if f.is_file() and f.name != "redis.log"]
        if files:
            found.append((max(f.stat().st_mtime for f in files), workdir))
    return max(found)[1] if found else None


@contextlib.contextmanager
def redis_target(command: str, *, read_only: bool) -> Iterator[Target]:
    """The Redis ``command`` asks (see the module docstring); announced on stderr."""
    settings = load_settings()
    # To stderr (stdout carries the answer, a table or JSON), and warnings only unless a level was asked for:
    # the line below already says which Redis, the embedded Redis's own start and stop lines would repeat it.
    quiet = "log_level" not in settings.model_fields_set
    configure_logging(settings.model_copy(update={"log_level": "WARNING"}) if quiet else settings)
    stop: EmbeddedRedis | None = None
    if set(STORE_FIELDS) & settings.model_fields_set:
        target = Target(settings, CONFIGURED)
    elif (running := _running(settings)) is not None:
        target = running
    elif read_only and (workdir := _kept_data(settings)) is not None:
        stop = EmbeddedRedis(workdir)
        stop.start()
        kept = load_settings(broker_url=stop.url, redis_url=stop.url)
        why = f"serving the data the last `ims-worker run` here kept in {workdir} (no run is running)"
        target = Target(kept, why)
    else:
        target = Target(
            settings,
            "the default: IMS_WORKER_BROKER_URL is not set and no `ims-worker run` ran in this directory",
        )
    if target.why != CONFIGURED:  # chosen for the user: say so (a configured one is named when it fails)
        print(f"ims-worker {command}: reading {target.describe()}", file=sys.stderr, flush=True)
    try:
        yield target
    finally:
        if stop is not None:
            stop.stop()
