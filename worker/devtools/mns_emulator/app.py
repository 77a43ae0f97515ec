"""``MnsEmulator``: the embeddable emulator (tests, ``ims-worker run``, ``ims-worker emulator mns``)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

import structlog

from worker.devtools.mns_emulator.admin import AdminApi
from worker.devtools.mns_emulator.auth import Authenticator
from worker.devtools.mns_emulator.faults import FaultInjector, FaultSettings
from worker.devtools.mns_emulator.ids import IdSource
from worker.devtools.mns_emulator.message_ops import DEFAULT_PRIORITY, preloaded
from worker.devtools.mns_emulator.models import QueueAttributes, QueueStats
from worker.devtools.mns_emulator.server import EmulatorHTTPServer
from worker.devtools.mns_emulator.service import MnsService
from worker.devtools.mns_emulator.store import Broker
from worker.devtools.mns_emulator.sts import StsIssuer, TemporaryCredential

log = structlog.get_logger(__name__)

DEFAULT_ACCESS_KEY_ID = "emulator-access-key-id"
DEFAULT_ACCESS_KEY_SECRET = "emulator-access-key-secret"  # noqa: S105 - a well-known test credential


class MnsEmulator:
    """An MNS queue service on ``host:port`` (port 0: pick a free one; see ``endpoint`` after ``start``).

    State lives in the object, not the server: ``stop()`` then ``start()`` is an outage on the same port
    with the same queues and messages. Faults can be changed at any time with ``set_faults``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        access_key_id: str = DEFAULT_ACCESS_KEY_ID,
        access_key_secret: str = DEFAULT_ACCESS_KEY_SECRET,
        extra_credentials: Mapping[str, str] | None = None,
        queues: Iterable[str] = (),
        faults: FaultSettings | None = None,
        seed: int | None = None,
        admin: bool = True,
        sts: StsIssuer | None = None,
        clock_offset_seconds: float = 0.0,
    ) -> None:
        self.host = host
        self.port = port
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self._ids = IdSource(seed or 0)
        self.broker = Broker(self._ids)
        self.faults = FaultInjector(faults, seed)
        credentials = {access_key_id: access_key_secret, **(extra_credentials or {})}
        self.sts = sts or StsIssuer()
        authenticator = Authenticator(credentials, sts=self.sts, clock_offset_seconds=clock_offset_seconds)
        self.service = MnsService(self.broker, authenticator, self.faults, f"mns-emulator-{host}")
        self._admin = AdminApi(self.broker, self.faults, self.service, self.sts) if admin else None
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        for name in queues:
            self.create_queue(name)

    # --- lifecycle -----------------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def bind(self) -> None:
        """Listen (without serving yet); afterwards ``port`` is the real port."""
        if self._server is None:
            self.broker.resume()
            self._server = EmulatorHTTPServer((self.host, self.port), self.service, self._ids, self._admin)
            self.port = self._server.server_address[1]

    def start(self) -> MnsEmulator:
        """Serve from a background thread."""
        if self._thread is None:
            self.bind()
            assert self._server is not None
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="mns-emulator",
                daemon=True,
            )
            self._thread.start()
            log.info("mns.emulator.started", endpoint=self.endpoint)
        return self

    def serve_forever(self) -> None:
        """Serve from the calling thread until ``stop()`` is called from another one."""
        self.bind()
        assert self._server is not None
        log.info("mns.emulator.serving", endpoint=self.endpoint)
        self._server.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        """Stop listening and cut every connection; queues and messages are kept."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self.broker.interrupt()  # pending long polls return now
        server.shutdown()
        server.server_close()
        server.close_connections()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None
        log.info("mns.emulator.stopped", endpoint=self.endpoint)

    def __enter__(self) -> MnsEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- Python API for tests and demos (the MNS API itself is for the SDK) ---------------------------------
    def create_queue(self, name: str, **attributes: Any) -> bool:
        """Create a queue (attributes as in ``QueueAttributes``); False if it already exists identically."""
        return self.broker.create_queue(name, QueueAttributes()._replace(**attributes))

    def delete_queue(self, name: str) -> None:
        self.broker.delete_queue(name)

    def send(
        self, queue: str, bodies: Iterable[str], *, priority: int = DEFAULT_PRIORITY, delay_seconds: int = 0
    ) -> list[str]:
        """Enqueue raw bodies directly (fast preloading); returns the message ids.

        Bodies are validated like SendMessage (size, priority 1-16, characters XML can carry): MnsError.
        """
        target = self.broker.get(queue)
        batch = preloaded(bodies, target.attributes, priority, delay_seconds)
        return [message_id for message_id, _ in target.send(batch)]

    def stats(self, queue: str) -> QueueStats:
        """Active (visible), inactive (received, in flight), delayed counts and totals for one queue."""
        return self.broker.get(queue).stats()

    def all_stats(self) -> dict[str, QueueStats]:
        return self.broker.stats()

    def set_faults(self, settings: FaultSettings | None = None, /, **changes: float) -> FaultSettings:
        """Replace the fault settings, or change some fields: ``set_faults(error_rate=0.1)``."""
        return self.faults.configure(settings, **changes)

    def clear_faults(self) -> FaultSettings:
        return self.faults.configure(FaultSettings())

    def deny(self, access_key_id: str, *operations: str) -> None:
        """Answer ``operations`` (MNS API names: "GetQueueAttributes", "BatchReceiveMessage"...) signed by
        ``access_key_id`` with 403 AccessDenied, as MNS does when the RAM policy lacks the action."""
        self.service.denied.update((access_key_id, operation) for operation in operations)

    def issue_temporary(self, lifetime_seconds: float = 3600.0) -> TemporaryCredential:
        """A new STS-style credential (id, secret, token, expiry) this emulator accepts until it expires."""
        return self.sts.issue(lifetime_seconds)

    @property
    def credentials_uri(self) -> str:
        """An ``ALIBABA_CLOUD_CREDENTIALS_URI`` that hands out credentials rotated by ``self.sts``."""
        return f"{self.endpoint}/_emulator/sts/credentials"

    @property
    def injected(self) -> Counter[str]:
        """How many faults of each kind were injected so far."""
        return self.faults.injected

    @property
    def operations(self) -> Counter[str]:
        """Requests answered so far, by "Operation status" (e.g. "BatchDeleteMessage 204")."""
        return self.service.operations
