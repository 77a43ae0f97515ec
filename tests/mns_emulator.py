"""The MNS emulator for tests: in-process (a thread) or as a real ``ims-worker emulator mns`` subprocess.

    with running_emulator(queues=["ice-callback-test"]) as mns:
        queue = mns.queue("ice-callback-test")          # a real aliyun-mns-sdk Queue (raw bodies)
        queue.send_message(Message("{}"))
        mns.set_faults(error_rate=0.1, latency_ms=50)   # live, for the next request on
        assert mns.stats("ice-callback-test").active == 1

Both kinds share one API (``EmulatorHandle``); the subprocess is driven through the emulator's ``/_emulator/``
JSON control API, so a consumer under test can be killed and restarted while the queue state survives.
Every SDK connection a handle hands out is closed when the context exits.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mns.account import Account
from mns.queue import Queue

from tests.servers import stop_process
from worker.devtools.mns_emulator import (
    DEFAULT_ACCESS_KEY_ID,
    DEFAULT_ACCESS_KEY_SECRET,
    FaultSettings,
    MnsEmulator,
    QueueStats,
)

DEFAULT_QUEUE = "ice-callback-test"
_READY = re.compile(r"mns-emulator ready endpoint=(\S+)")


class EmulatorHandle:
    """What a test gets: endpoint, credentials, SDK objects, live faults and queue state."""

    def __init__(self, access_key_id: str, access_key_secret: str) -> None:
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self._accounts: list[Account] = []

    @property
    def endpoint(self) -> str:
        raise NotImplementedError

    def account(self, *, access_key_secret: str | None = None) -> Account:
        """A new SDK account (one HTTP connection; one per thread, as in production)."""
        secret = self.access_key_secret if access_key_secret is None else access_key_secret
        account = Account(self.endpoint, self.access_key_id, secret)
        self._accounts.append(account)
        return account

    def queue(self, name: str = DEFAULT_QUEUE, *, raw: bool = True) -> Queue:
        """A real SDK ``Queue``; ``raw`` (default) sends and receives bodies without base64."""
        queue = self.account().get_queue(name)
        queue.set_encoding(not raw)
        return queue

    def close_clients(self) -> None:
        for account in self._accounts:
            account.mns_client.close_connection()
        self._accounts.clear()

    # --- implemented per kind ------------------------------------------------------------------------------
    def set_faults(self, **changes: float) -> FaultSettings:
        raise NotImplementedError

    def clear_faults(self) -> FaultSettings:
        return self.set_faults(**FaultSettings().as_dict())

    def stats(self, queue: str = DEFAULT_QUEUE) -> QueueStats:
        raise NotImplementedError

    def create_queue(self, name: str, **attributes: Any) -> bool:
        raise NotImplementedError

    def send(
        self, queue: str, bodies: Iterable[str], *, priority: int = 8, delay_seconds: int = 0
    ) -> list[str]:
        """Preload raw bodies without the SDK (fast); returns the message ids."""
        raise NotImplementedError

    def injected(self) -> dict[str, int]:
        raise NotImplementedError

    def operations(self) -> dict[str, int]:
        """Requests answered so far by "Operation status", e.g. {"BatchDeleteMessage 204": 3}."""
        raise NotImplementedError

    def wait_until(self, predicate: Any, queue: str = DEFAULT_QUEUE, timeout: float = 30.0) -> QueueStats:
        """Poll ``stats(queue)`` until ``predicate(stats)`` holds; returns the stats or fails the test."""
        deadline = time.monotonic() + timeout
        stats = self.stats(queue)
        while not predicate(stats):
            if time.monotonic() > deadline:
                pytest.fail(f"queue {queue} never reached the expected state; last: {stats}")
            time.sleep(0.05)
            stats = self.stats(queue)
        return stats


class InProcessEmulator(EmulatorHandle):
    """The emulator in this process; ``emulator`` is the full Python API (stop/start for outages...)."""

    def __init__(self, emulator: MnsEmulator) -> None:
        super().__init__(emulator.access_key_id, emulator.access_key_secret)
        self.emulator = emulator

    @property
    def endpoint(self) -> str:
        return self.emulator.endpoint

    def set_faults(self, **changes: float) -> FaultSettings:
        return self.emulator.set_faults(**changes)

    def stats(self, queue: str = DEFAULT_QUEUE) -> QueueStats:
        return self.emulator.stats(queue)

    def create_queue(self, name: str, **attributes: Any) -> bool:
        return self.emulator.create_queue(name, **attributes)

    def send(
        self, queue: str, bodies: Iterable[str], *, priority: int = 8, delay_seconds: int = 0
    ) -> list[str]:
        return self.emulator.send(queue, bodies, priority=priority, delay_seconds=delay_seconds)

    def injected(self) -> dict[str, int]:
        return dict(self.emulator.injected)

    def operations(self) -> dict[str, int]:
        return dict(self.emulator.operations)


class SubprocessEmulator(EmulatorHandle):
    """``python -m worker.cli.emulator mns`` in a child process, controlled through ``/_emulator/``."""

    def __init__(self, args: list[str], workdir: Path, access_key_id: str, access_key_secret: str) -> None:
        super().__init__(access_key_id, access_key_secret)
        self._args = args
        self.log_path = workdir / "mns-emulator.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._endpoint = ""

    @property
    def endpoint(self) -> str:
        return self._endpoint

    def start(self, timeout: float = 15.0) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(self._args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = _READY.search(self.log_path.read_text(errors="replace"))
            if found:
                self._endpoint = found.group(1)
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the MNS emulator did not start: {self.log_path.read_text(errors='replace')}")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def _admin(self, method: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        conn = http.client.HTTPConnection(self._endpoint.removeprefix("http://"), timeout=10)
        try:
            body = json.dumps(payload).encode() if payload is not None else None
            conn.request(
                method, f"/_emulator/{path}", body=body, headers={"Content-Type": "application/json"}
            )
            response = conn.getresponse()
            answer: dict[str, Any] = json.loads(response.read())
        finally:
            conn.close()
        if response.status != 200:
            raise RuntimeError(f"emulator admin {method} {path}: {response.status} {answer}")
        return answer

    def set_faults(self, **changes: float) -> FaultSettings:
        return FaultSettings(**self._admin("PUT", "faults", dict(changes))["faults"])

    def stats(self, queue: str = DEFAULT_QUEUE) -> QueueStats:
        raw = dict(self._admin("GET", "state")["queues"][queue])
        raw.pop("total", None)
        return QueueStats(**raw)

    def create_queue(self, name: str, **attributes: Any) -> bool:
        return bool(self._admin("PUT", f"queues/{name}", attributes)["created"])

    def send(
        self, queue: str, bodies: Iterable[str], *, priority: int = 8, delay_seconds: int = 0
    ) -> list[str]:
        payload = {"bodies": list(bodies), "priority": priority, "delay_seconds": delay_seconds}
        return list(self._admin("POST", f"queues/{queue}/messages", payload)["message_ids"])

    def injected(self) -> dict[str, int]:
        return dict(self._admin("GET", "state")["injected"])

    def operations(self) -> dict[str, int]:
        return dict(self._admin("GET", "state")["operations"])


def emulator_command(
    *,
    port: int = 0,
    queues: Iterable[str] = (DEFAULT_QUEUE,),
    faults: FaultSettings | None = None,
    seed: int | None = 0,
    access_key_id: str = DEFAULT_ACCESS_KEY_ID,
    access_key_secret: str = DEFAULT_ACCESS_KEY_SECRET,
    entry: tuple[str, ...] = (sys.executable, "-m", "worker.cli.emulator"),
) -> list[str]:
    """The command line that starts the emulator (``entry`` may also be ``("ims-worker", "emulator")``)."""
    args = [*entry, "mns", "--port", str(port), "--access-key-id", access_key_id]
    args += ["--access-key-secret", access_key_secret]
    for name in queues:
        args += ["--queue", name]
    for name, value in (faults or FaultSettings()).as_dict().items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    if seed is not None:
        args += ["--seed", str(seed)]
    return args


@contextlib.contextmanager
def running_emulator(
    queues: Iterable[str] = (DEFAULT_QUEUE,),
    *,
    faults: FaultSettings | None = None,
    seed: int | None = 0,
    in_process: bool = True,
    port: int = 0,
) -> Iterator[EmulatorHandle]:
    """Start an emulator with ``queues`` created (default attributes), yield its handle, stop it."""
    queues = list(queues)
    if in_process:
        emulator = MnsEmulator(port=port, queues=queues, faults=faults, seed=seed)
        handle: EmulatorHandle = InProcessEmulator(emulator)
        emulator.start()
        try:
            yield handle
        finally:
            handle.close_clients()
            emulator.stop()
        return
    with tempfile.TemporaryDirectory(prefix="mns-emulator-") as workdir:
        command = emulator_command(port=port, queues=queues, faults=faults, seed=seed)
        child = SubprocessEmulator(command, Path(workdir), DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET)
        child.start()
        try:
            yield child
        finally:
            child.close_clients()
            child.stop()


@pytest.fixture
def mns_emulator() -> Iterator[InProcessEmulator]:
    """An in-process emulator with the queue ``DEFAULT_QUEUE``; ``.emulator`` is the full Python API."""
    with running_emulator() as handle:
        assert isinstance(handle, InProcessEmulator)
        yield handle
