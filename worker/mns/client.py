"""Building SDK queue clients the way a long-running consumer needs them.

The SDK holds one ``http.client`` connection per client and is not thread-safe, so every poller thread builds
its own. HTTPS connections are created without a socket timeout (``set_connection_timeout`` only rebuilds
plain HTTP connections), so a stalled network would block a poller forever: we set the timeout on both kinds.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

from mns.queue import Queue

from worker.errors import ConfigurationError
from worker.mns.credentials import credentials_for
from worker.mns.fastclient import ConsumerClient
from worker.settings import Settings


def open_queue(settings: Settings, queue_name: str) -> Queue:
    """An SDK ``Queue`` returning raw bodies (decoded tolerantly by us), with timeouts on every socket, on a
    ``ConsumerClient`` (the SDK's client with faster parsing on the consumer's hot path)."""
    if not settings.mns_endpoint:
        raise ConfigurationError("IMS_WORKER_MNS_ENDPOINT is not set")
    if bool(settings.mns_access_key_id) != (settings.mns_access_key_secret is not None):
        raise ConfigurationError(
            "IMS_WORKER_MNS_ACCESS_KEY_ID and IMS_WORKER_MNS_ACCESS_KEY_SECRET go together: set both, or "
            "neither to use the Alibaba Cloud default credentials chain"
        )
    # Asked before signing every request: a refreshed STS token is used from the next request on.
    credentials = credentials_for(settings)
    try:
        client: Any = ConsumerClient(settings.mns_endpoint, credentials_provider=credentials)
    except Exception as exc:  # the SDK raises its parameter exception for a malformed endpoint
        raise ConfigurationError(f"invalid IMS_WORKER_MNS_ENDPOINT {settings.mns_endpoint!r}") from exc
    client.set_connection_timeout(settings.mns_socket_timeout)
    client.http.conn.timeout = settings.mns_socket_timeout  # what HTTPSConnection.connect() uses
    client.use_fast_responses()
    queue = Queue(queue_name, client)
    # IMS writes plain JSON; the SDK's default base64 decoding would turn it into garbage silently.
    queue.set_encoding(False)
    return queue


def interrupt(queue: Queue) -> None:
    """Break a long poll in progress from another thread (used at shutdown): the receive raises at once.

    The SDK answers a broken keep-alive connection by reconnecting and resending once, which would start
    a fresh long poll; so the connection is first made unable to reconnect.
    """
    conn = queue.mns_client.http.conn

    def refuse_to_reconnect() -> None:
        raise OSError("the consumer is shutting down")

    conn.connect = refuse_to_reconnect
    sock = getattr(conn, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
