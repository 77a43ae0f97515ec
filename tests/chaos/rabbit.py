"""A private RabbitMQ node for the broker chaos scenarios, so that restarting "the broker" disturbs nobody.

The machine's RabbitMQ (``rabbit@localhost`` on 5672) is shared: the scenarios never stop it. Instead they
start their own node from the same installation, under its own name, ports, data directory and Erlang cookie,
and stop/start that one (its quorum queues live in its data directory and survive the restart, as in
production). Skips with the reason when the RabbitMQ server scripts are not installed or the node does not
come up.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.servers import free_port, wait_for_port

START_TIMEOUT = 60.0


def _script(name: str) -> str | None:
    # Debian's /usr/sbin/rabbitmq-server and rabbitmqctl re-execute as the rabbitmq user (whose home holds the
    # shared node's cookie, and who cannot write our directory); the scripts inside the installation run as
    # whoever calls them.
    found = sorted(glob.glob(f"/usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin/{name}"))
    return found[-1] if found else shutil.which(name)


@dataclass
class PrivateRabbit:
    workdir: Path
    name: str = field(default_factory=lambda: f"ims-chaos-{uuid.uuid4().hex[:8]}@localhost")
    port: int = 0
    dist_port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def env(self) -> dict[str, str]:
        w = self.workdir
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")},
            "HOME": str(w),  # the Erlang cookie, for this node and rabbitmqctl
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(w / "mnesia"),
            "RABBITMQ_LOG_BASE": str(w / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(w / "enabled_plugins"),
            "RABBITMQ_FEATURE_FLAGS_FILE": str(w / "feature_flags"),
            "RABBITMQ_PID_FILE": str(w / "node.pid"),
            "RABBITMQ_CONFIG_FILE": str(w / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(w / "advanced.config"),
        }

    def start(self) -> None:
        script = _script("rabbitmq-server")
        if script is None:
            pytest.skip("rabbitmq-server is not installed; the RabbitMQ broker scenarios need it")
        if not self.port:
            self.port, self.dist_port = free_port(), free_port()
            self.workdir.mkdir(parents=True, exist_ok=True)
            (self.workdir / "enabled_plugins").write_text("[].\n")
            cookie = self.workdir / ".erlang.cookie"
            cookie.write_text(secrets.token_hex(16))
            cookie.chmod(0o400)
        with (self.workdir / "server.out").open("ab") as out:
            self.process = subprocess.Popen(
                [script], env=self.env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            wait_for_port(self.port, timeout=START_TIMEOUT)
        except RuntimeError:
            tail = (self.workdir / "server.out").read_text(errors="replace")[-1500:]
            self.kill()
            pytest.skip(f"a private RabbitMQ node did not start within {START_TIMEOUT:.0f}s:\n{tail}")

    def ctl(self, *args: str) -> str:
        done = subprocess.run(
            [_script("rabbitmqctl") or "rabbitmqctl", "-n", self.name, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    def stop(self) -> None:
        """A clean broker shutdown (what a rolling restart does)."""
        if self.process is None:
            return
        try:
            self.ctl("stop")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self.kill()
            return
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
        self.process = None

    def kill(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)  # its own session: beam, epmd child, shells
            self.process.wait(timeout=30)
            self.process = None

    def restart(self) -> float:
        """Stop, start; return the seconds the broker was unreachable."""
        began = time.monotonic()
        self.stop()
        self.start()
        return time.monotonic() - began

    def queue_types(self) -> dict[str, str]:
        lines = self.ctl("list_queues", "-q", "--no-table-headers", "name", "type").splitlines()
        return dict(tuple(line.split("\t")[:2]) for line in lines if "\t" in line)  # type: ignore[misc]
