"""Production Redis shapes for tests, all real processes: TLS with client certificates (certificates made here
with the openssl CLI), an ACL user, and a Sentinel-managed primary + replica."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pytest
import redis

from tests.celery_worker import wait_until
from tests.servers import RedisServer, free_port, redis_server_binary, stop_process, wait_for_port
from worker.delivery.publish import Publisher
from worker.errors import BrokerUnavailable
from worker.events import Event

MASTER = "ims-primary"


# --- TLS --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here: trusting only it must fail


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _ca(directory: Path, name: str) -> Path:
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.crt",
        cwd=directory,
    )  # fmt: skip
    return directory / f"{name}.crt"


def _signed(directory: Path, name: str, ca: str, extensions: str) -> None:
    (directory / f"{name}.ext").write_text(extensions)
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
        "-keyout", f"{name}.key", "-out", f"{name}.csr",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-days", "2", "-out", f"{name}.crt", "-extfile", f"{name}.ext",
        cwd=directory,
    )  # fmt: skip


def make_certs(directory: Path) -> Certs:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, both signed by it."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is not installed; the TLS tests make their certificates with it")
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca(directory, "test-ca")
    other = _ca(directory, "other-ca")
    _signed(directory, "server", "test-ca", "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _signed(directory, "client", "test-ca", "extendedKeyUsage=clientAuth\n")
    d = directory
    return Certs(ca, d / "server.crt", d / "server.key", d / "client.crt", d / "client.key", other)


@dataclass
class TlsRedis:
    """redis-server speaking only TLS (``--port 0``), requiring a client certificate signed by the test CA."""

    workdir: Path
    certs: Certs
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.port = self.port or free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        c = self.certs
        args = [
            redis_server_binary(), "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1",
            "--tls-cert-file", str(c.server_cert), "--tls-key-file", str(c.server_key),
            "--tls-ca-cert-file", str(c.ca), "--tls-auth-clients", "yes",
            "--dir", str(self.workdir), "--save", "", "--appendonly", "no",
            "--logfile", str(self.workdir / "redis.log"),
        ]  # fmt: skip
        # A build without TLS rejects --tls-port before it opens its log file: keep its stderr too.
        stderr = self.workdir / "stderr.log"
        with stderr.open("wb") as sink:
            self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=sink)
        try:
            wait_for_port(self.port)
        except RuntimeError:
            self.stop()
            said = "".join(
                path.read_text(errors="replace")
                for path in (self.workdir / "redis.log", stderr)
                if path.exists()
            )
            if "tls" in said.lower():
                pytest.skip(f"{args[0]} is built without TLS (Debian's redis-server has it): {said[-300:]}")
            raise

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None


# --- ACL --------------------------------------------------------------------------------------------------
def add_acl_user(server: RedisServer, user: str, password: str) -> None:
    """An ACL user with every right, and the passwordless ``default`` user switched off."""
    client = redis.Redis(host="127.0.0.1", port=server.port)
    client.acl_setuser(
        user, enabled=True, passwords=[f"+{password}"], keys=["*"], channels=["*"], commands=["+@all"]
    )
    client.acl_setuser("default", enabled=False)
    client.close()


# --- Sentinel ---------------------------------------------------------------------------------------------
@dataclass
class SentinelGroup:
    """A primary, one replica and ``sentinels`` Sentinel processes watching them as ``MASTER``: three, with a
    quorum of two (a majority), as deploy/'s Sentinel profile ships them, so a failover needs two Sentinels to
    agree the primary is down and one to win the election among three.

    The data nodes require ``password``; the Sentinels require ``sentinel_password``. Failure detection is
    fast (1 s) so that a test sees a promotion within seconds, and staggered (each further Sentinel 0.5 s
    later): Sentinels that detect a failure in the same millisecond each vote for themselves, none wins the
    election, and the failover is abandoned when the killed primary comes back (a CI run's Sentinel logs:
    two ``+try-failover`` at 19:17:40.435, then ``-failover-abort-not-elected``)."""

    workdir: Path
    password: str
    sentinel_password: str
    sentinels: int = 3
    down_after_ms: int = 1000
    nodes: list[RedisServer] = field(default_factory=list)
    sentinel_ports: list[int] = field(default_factory=list)
    sentinel_processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def url(self, db: int = 0) -> str:
        """The broker/store URL: every Sentinel, the master's password on the first."""
        first, *rest = self.sentinel_ports
        parts = [f"sentinel://:{self.password}@127.0.0.1:{first}/{db}"]
        parts += [f"sentinel://127.0.0.1:{port}/{db}" for port in rest]
        return ";".join(parts)

    def start(self) -> None:
        primary = self._node("primary")
        primary.start()
        replica = self._node("replica", replica_of=primary.port)
        replica.start()
        self.nodes = [primary, replica]
        self.wait_replicated(replica.port)
        for i in range(self.sentinels):
            self._start_sentinel(i, primary.port)
        self.wait_master(primary.port)

    def _node(self, name: str, replica_of: int | None = None) -> RedisServer:
        extra = ["--requirepass", self.password, "--masterauth", self.password]
        if replica_of is not None:
            extra += ["--replicaof", "127.0.0.1", str(replica_of)]
        return RedisServer(
            workdir=self.workdir / name, appendonly=True, extra_args=extra, password=self.password
        )

    def wait_replicated(self, port: int, timeout: float = 20.0) -> None:
        """Until the replica on ``port`` has its link to the primary up (after a failover it resyncs)."""
        client = redis.Redis(host="127.0.0.1", port=port, password=self.password)
        deadline = time.monotonic() + timeout
        try:
            while client.info("replication").get("master_link_status") != "up":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"replica on {port} not in sync after {timeout}s")
                time.sleep(0.05)
        finally:
            client.close()

    def _start_sentinel(self, i: int, primary_port: int) -> None:
        port = free_port()
        directory = self.workdir / f"sentinel-{i}"
        directory.mkdir(parents=True, exist_ok=True)
        conf = directory / "sentinel.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {directory}\nlogfile {directory / 'sentinel.log'}\n"
            f"requirepass {self.sentinel_password}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {primary_port} {self.sentinels // 2 + 1}\n"
            f"sentinel auth-pass {MASTER} {self.password}\n"
            f"sentinel down-after-milliseconds {MASTER} {self.down_after_ms + 500 * i}\n"
            f"sentinel failover-timeout {MASTER} 10000\n"
            f"sentinel parallel-syncs {MASTER} 1\n"
        )
        process = subprocess.Popen(
            [redis_server_binary(), str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.sentinel_ports.append(port)
        self.sentinel_processes.append(process)
        wait_for_port(port)

    def master_port(self, sentinel: int = 0) -> int:
        """The primary's port as Sentinel number ``sentinel`` reports it."""
        client = redis.Redis(
            host="127.0.0.1", port=self.sentinel_ports[sentinel], password=self.sentinel_password
        )
        try:
            _, port = cast(tuple[str, int], client.sentinel_get_master_addr_by_name(MASTER))
        finally:
            client.close()
        return int(port)

    def wait_master(self, port: int, timeout: float = 30.0) -> None:
        """Until every Sentinel reports ``port`` as the primary, and sees a replica of it."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(redis.RedisError, TypeError, ValueError):
                ports = {self.master_port(i) for i in range(len(self.sentinel_ports))}
                if ports == {port} and self._sees_replica():
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Sentinels do not all report 127.0.0.1:{port} as {MASTER} after {timeout}s"
                )
            time.sleep(0.1)

    def replica_port(self) -> int:
        """Wait until the current replica is in sync with the primary; return its port."""
        master = self.master_port()
        replica = next(n.port for n in self.nodes if n.port != master)
        self.wait_replicated(replica)
        return replica

    def wait_role(self, port: int, role: str, timeout: float = 30.0) -> None:
        client = redis.Redis(host="127.0.0.1", port=port, password=self.password)
        try:
            wait_until(lambda: client.info("replication")["role"] == role, timeout=timeout, interval=0.1)
        finally:
            client.close()

    def _sees_replica(self) -> bool:
        client = redis.Redis(host="127.0.0.1", port=self.sentinel_ports[0], password=self.sentinel_password)
        try:
            return bool(client.sentinel_slaves(MASTER))
        finally:
            client.close()

    def node(self, port: int) -> RedisServer:
        return next(n for n in self.nodes if n.port == port)

    def stop(self) -> None:
        for process in self.sentinel_processes:
            stop_process(process)
        for node in self.nodes:
            node.stop()


@contextlib.contextmanager
def sentinel_group(workdir: Path, **kwargs: object) -> Iterator[SentinelGroup]:
    group = SentinelGroup(workdir, "master-pw-5e1f", "sentinel-pw-9a7c", **kwargs)  # type: ignore[arg-type]
    try:
        group.start()
        yield group
    finally:
        group.stop()


def publish_taken(publisher: Publisher, events: list[Event]) -> bool:
    """One publish as an upstream retrying until it is taken would try it: False while Redis refuses it (right
    after a promotion a call may still meet the demoted primary, or no replica has confirmed it yet)."""
    try:
        publisher.publish(events)
    except BrokerUnavailable:
        return False
    return True
