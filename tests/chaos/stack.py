"""The whole service for one scenario: private Redis (AOF on), the MNS emulator, the consumer, the shim and a
Celery worker with the ledger plugin, all real processes whose output is kept under the run directory.

Two ways to run the service processes:

* separately (``supervised=False``): ``ims-worker consume``, ``ims-worker shim`` and ``celery worker``, each a
  ``Service`` the scenario kills and restarts itself;
* supervised (``supervised=True``): one ``ims-worker run`` whose supervisor restarts a killed child on its
  own, the way operators run it on one host.
"""

from __future__ import annotations

import random
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

from tests.celery_worker import ALL_QUEUES, CELERY
from tests.chaos.procs import Service, children, find_child, kill9, wait_for
from tests.chaos.spec import PLUGIN
from tests.mns_emulator import SubprocessEmulator, emulator_command
from tests.servers import RedisServer, free_port
from worker import keyspace
from worker.devtools.mns_emulator import DEFAULT_ACCESS_KEY_ID
from worker.shim.spoolfile import summarize

IMS_WORKER = str(Path(sys.executable).with_name("ims-worker"))
QUEUE = "ice-callback-chaos"
MAX_BODY_BYTES = 64 * 1024


def broker_busy(redis_url: str) -> bool:
    """A task message queued or delivered but unacknowledged, or an outbox copy left (Redis errors raise)."""
    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    try:
        return bool(
            any(client.llen(q) for q in ALL_QUEUES) or client.hlen("unacked") or client.hlen(keyspace.OUTBOX)
        )
    finally:
        client.close()


@dataclass(frozen=True)
class Keys:
    """Every secret of the run: random per seed, so that the log scan looks for values nobody else uses."""

    mns_secret: str
    by_source: dict[str, str]

    @classmethod
    def generate(cls, rng: random.Random) -> Keys:
        def secret(name: str) -> str:
            return f"{name}-{rng.getrandbits(96):024x}"

        sources = {
            "ims": "imskey",
            "live.record": "livekey",
            "rtc": "rtckey",
            "tencent": "tckey",
            "live.caster": "castertoken",
        }
        return cls(secret("mnssecret"), {source: secret(name) for source, name in sources.items()})

    def values(self) -> list[str]:
        return [self.mns_secret, *self.by_source.values()]


class Stack:
    def __init__(
        self,
        workdir: Path,
        keys: Keys,
        *,
        supervised: bool = False,
        visibility_timeout: int = 4,
        window: int = 300,
        concurrency: int = 2,
        emulator_seed: int | None = None,
        extra_env: dict[str, str] | None = None,
        profile: str = "cpu",
    ) -> None:
        self.workdir = workdir
        self.logdir = workdir / "logs"
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.keys = keys
        self.supervised = supervised
        self.visibility_timeout = visibility_timeout
        self.window = window
        self.concurrency = concurrency
        # "cpu": prefork with ``concurrency`` processes; "io": the threads preset as production starts it (no
        # pool flags, the profile's 32 threads): there are no pool children, a kill -9 takes the whole worker.
        self.profile = profile
        self.extra_env = extra_env or {}
        self.redis = RedisServer(workdir=workdir / "redis", appendonly=True)
        self.shim_port = free_port()
        self.mns = SubprocessEmulator(
            emulator_command(queues=(), seed=emulator_seed, access_key_secret=keys.mns_secret),
            self.logdir,
            DEFAULT_ACCESS_KEY_ID,
            keys.mns_secret,
        )
        self.services: dict[str, Service] = {}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.shim_port}"

    @property
    def redis_url(self) -> str:
        return self.redis.url

    def env(self) -> dict[str, str]:
        k = self.keys.by_source
        env = {
            "IMS_WORKER_BROKER_URL": self.redis_url,
            "IMS_WORKER_HANDLER_MODULES": PLUGIN,
            "IMS_WORKER_TASK_MAX_ATTEMPTS": "3",
            "IMS_WORKER_RETRY_BACKOFF_SECONDS": "0.05",
            "IMS_WORKER_RETRY_BACKOFF_MAX_SECONDS": "0.3",
            "IMS_WORKER_LOG_FORMAT": "json",
            "IMS_WORKER_LOG_LEVEL": "INFO",
            "IMS_WORKER_MNS_ENDPOINT": self.mns.endpoint,
            "IMS_WORKER_MNS_ACCESS_KEY_ID": self.mns.access_key_id,
            "IMS_WORKER_MNS_ACCESS_KEY_SECRET": self.keys.mns_secret,
            "IMS_WORKER_MNS_QUEUES": QUEUE,
            "IMS_WORKER_MNS_WAIT_SECONDS": "1",
            "IMS_WORKER_MNS_SOCKET_TIMEOUT": "5",
            # Delete-refusal waves redeliver messages many times on purpose (not a test of the limit).
            "IMS_WORKER_MNS_MAX_DEQUEUE_COUNT": "100",
            "IMS_WORKER_CONSUMER_METRICS_PORT": "0",
            "IMS_WORKER_CONSUMER_GRACE_SECONDS": "10",
            "IMS_WORKER_IMS_CALLBACK_KEY": k["ims"],
            "IMS_WORKER_LIVE_AUTH_KEY": k["live.record"],
            "IMS_WORKER_RTC_APP_KEY": k["rtc"],
            "IMS_WORKER_TENCENT_CALLBACK_KEY": k["tencent"],
            "IMS_WORKER_CASTER_TOKEN": k["live.caster"],
            "IMS_WORKER_SHIM_PUBLIC_URL": self.base_url,
            "IMS_WORKER_SHIM_PORT": str(self.shim_port),
            "IMS_WORKER_SHIM_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
            "IMS_WORKER_SIGNATURE_WINDOW_SECONDS": str(self.window),
            "IMS_WORKER_STATE_DIR": str(self.workdir / "state"),
            "IMS_WORKER_WORKER_PROFILE": self.profile,
            "IMS_WORKER_RUN_GRACE_SECONDS": "15",
            "PYTHONUNBUFFERED": "1",
        }
        if self.profile == "cpu":
            env["IMS_WORKER_WORKER_CONCURRENCY"] = str(self.concurrency)
        env.update(self.extra_env)
        return env

    # --- lifecycle -----------------------------------------------------------------------------------------
    def start(self, *, shim_only: bool = False) -> None:
        """Everything; or with ``shim_only`` just Redis and the shim (the security tests)."""
        self.redis.start()
        if shim_only:
            self.services["shim"] = self._shim(self.env())
            self.services["shim"].start()
            self.wait_ready(roles=("shim",))
            return
        self.mns.start()
        self.mns.create_queue(QUEUE, visibility_timeout=self.visibility_timeout)
        env = self.env()
        if self.supervised:
            self.services["run"] = Service("run", [IMS_WORKER, "run"], env, self.logdir)
        else:
            self.services["worker"] = self.worker_service("worker")
            self.services["consumer"] = Service("consumer", [IMS_WORKER, "consume"], env, self.logdir)
            self.services["shim"] = self._shim(env)
        for service in self.services.values():
            service.start()
        self.wait_ready()

    def worker_service(self, name: str) -> Service:
        """A ``celery worker`` of the stack's concurrency (the recovery scenario starts a second one)."""
        pool = ["--pool", "prefork", "--concurrency", str(self.concurrency)] if self.profile == "cpu" else []
        argv = [
            CELERY, "-A", "worker.app", "worker", *pool,
            "--queues", ",".join(ALL_QUEUES),
            "--hostname", f"chaos-{name}-{self.shim_port}@%h",
            "--without-mingle", "--without-gossip",
            "--loglevel", "INFO",
        ]  # fmt: skip
        return Service(name, argv, self.env(), self.logdir)

    def _shim(self, env: dict[str, str]) -> Service:
        return Service("shim", [IMS_WORKER, "shim", "--port", str(self.shim_port)], env, self.logdir)

    def wait_ready(self, timeout: float = 60.0, roles: tuple[str, ...] = ("shim", "worker")) -> None:
        checks = {
            "shim": self.shim_ready,
            "worker": lambda: self.pool_up() and " ready." in self.output(),
        }
        for name, check in checks.items():
            if name not in roles:
                continue
            if not wait_for(check, timeout):
                raise RuntimeError(f"{name} not ready after {timeout}s:\n{self.tail()}")

    def shim_ready(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> dict[str, int | None]:
        """Stop the service processes gracefully (SIGTERM), then the emulator and Redis."""
        codes = {name: service.stop() for name, service in self.services.items()}
        if self.mns.process is not None:
            self.mns.stop()
        self.redis.stop()
        return codes

    # --- process look-ups ----------------------------------------------------------------------------------
    def pid_of(self, role: str) -> int | None:
        """The current pid of ``consumer``, ``shim`` or ``worker`` (the Celery main process)."""
        if not self.supervised:
            return self.services[role].pid
        run = self.services["run"].pid
        needle = {"consumer": "worker.cli consume", "shim": "worker.cli shim", "worker": "celery"}[role]
        return find_child(run, needle) if run else None

    def pool_up(self) -> bool:
        return self.profile == "io" or len(self.worker_children()) >= self.concurrency

    def worker_children(self) -> list[int]:
        pid = self.pid_of("worker")
        return children(pid) if pid else []

    def kill(self, role: str) -> int | None:
        """``kill -9`` the consumer or the shim (supervised: the supervisor restarts it; else ``restart``)."""
        if not self.supervised:
            return self.services[role].kill9()
        pid = self.pid_of(role)
        return pid if pid and kill9(pid) else None

    def restart(self, role: str) -> None:
        if not self.supervised:
            self.services[role].start()

    def kill_worker_child(self, rng: random.Random, prefer: int | None = None) -> int | None:
        """``kill -9`` a pool child (prefork), or the whole worker process under the threads pool, whose
        threads run the handlers (supervised: ``ims-worker run`` restarts it)."""
        if self.profile == "io":
            pid = self.pid_of("worker")
            return pid if pid and kill9(pid) else None
        pids = self.worker_children()
        if not pids:
            return None
        victim = prefer if prefer in pids else rng.choice(sorted(pids))
        return victim if kill9(victim) else None

    def crashed(self) -> list[str]:
        """Services that died without being killed by the scenario."""
        return [
            f"{name} exited with {s.unexpected_exit()}"
            for name, s in self.services.items()
            if s.unexpected_exit() is not None
        ]

    # --- state ---------------------------------------------------------------------------------------------
    def idle(self) -> bool:
        """MNS queue empty, no task message waiting or delivered and unacknowledged, no outbox copy left (a
        message lost in kombu's BRPOP window is in flight until the outbox sweep re-enqueues it)."""
        try:
            if self.mns.stats(QUEUE).total:
                return False
            busy = broker_busy(self.redis_url)
        except (redis.RedisError, OSError, RuntimeError):
            return False
        return not busy and not self.spooled()

    def spooled(self) -> int:
        """Requests the shims answered 200 that are still in their spool files, waiting to be published."""
        spool = self.workdir / "state" / "shim-spool"
        try:
            return sum(summarize(path)[0] for path in spool.glob("spool-*.db"))
        except sqlite3.Error:
            return 1  # a file being created or removed right now: look again

    def log_files(self) -> list[Path]:
        return sorted(p for p in self.workdir.rglob("*.log") if p.is_file())

    def output(self) -> str:
        return "".join(service.output() for service in self.services.values())

    def tail(self, lines: int = 30) -> str:
        return "\n".join(f"--- {name}\n{s.tail(lines)}" for name, s in self.services.items())

    def wait_idle(self, timeout: float, settle: float = 2.0) -> bool:
        """Idle continuously for ``settle`` seconds (retries waiting on a countdown are still unacked)."""
        deadline = time.monotonic() + timeout
        since: float | None = None
        while time.monotonic() < deadline:
            if self.crashed():
                return False  # no point waiting for a dead process
            if self.idle():
                since = since or time.monotonic()
                if time.monotonic() - since >= settle:
                    return True
            else:
                since = None
            time.sleep(0.2)
        return False
