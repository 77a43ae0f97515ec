"""One HTTP POST that reports the server's early answer instead of the reset that follows it.

A server that refuses a request from its headers (413: the declared body is over its limit) answers and
closes while the client is still sending the body; with ``urllib`` the client then sees only ``Connection
reset by peer``. Here the body goes out in chunks, and as soon as the server has answered, the rest is not
sent and the answer is read: the caller gets ``413`` and the shim's reason.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Mapping
from http.client import HTTPConnection, HTTPException, HTTPSConnection
from urllib.parse import urlsplit

CHUNK_BYTES = 16 * 1024
FIRST_CHUNK_BYTES = 1024  # no shim limit is smaller (IMS_WORKER_SHIM_MAX_BODY_BYTES >= 1024)
EARLY_ANSWER_WAIT_SECONDS = 0.05  # after the first chunk of a larger body: time for a refusal to arrive


class ConnectionLost(OSError):
    """The connection broke before any answer; the message says how far the request got."""


def _answered(sock: socket.socket, wait: float = 0.0) -> bool:
    readable, _, _ = select.select([sock], [], [], wait)
    return bool(readable)


def _send_body(sock: socket.socket, body: bytes) -> int:
    """Send ``body`` unless the server answers first; return the bytes sent."""
    view = memoryview(body)
    sent = 0
    while sent < len(body):
        size = FIRST_CHUNK_BYTES if sent == 0 else CHUNK_BYTES
        wait = EARLY_ANSWER_WAIT_SECONDS if sent == FIRST_CHUNK_BYTES else 0.0
        if sent and _answered(sock, wait):
            return sent
        try:
            sock.sendall(view[sent : sent + size])
        except (BrokenPipeError, ConnectionResetError):
            return sent
        sent += len(view[sent : sent + size])
    return sent


def post(url: str, body: bytes, headers: Mapping[str, str], *, timeout: float) -> tuple[int, str]:
    """POST ``body`` to an http(s) ``url``; return (status, body text) of any HTTP answer."""
    parts = urlsplit(url)
    connection_type = HTTPSConnection if parts.scheme == "https" else HTTPConnection
    connection = connection_type(parts.hostname or "", parts.port, timeout=timeout)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    sent = 0
    try:
        connection.putrequest("POST", path, skip_accept_encoding=True)
        for name, value in headers.items():
            if name.lower() != "content-length":
                connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders()
        assert connection.sock is not None  # endheaders() connected it
        sent = _send_body(connection.sock, body)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    except (ConnectionResetError, BrokenPipeError, HTTPException) as exc:
        raise ConnectionLost(
            f"the connection was closed after {sent} of {len(body)} body bytes, without an answer "
            f"({type(exc).__name__}); a shim closes it this way on a body over its limit "
            "(IMS_WORKER_SHIM_MAX_BODY_BYTES)"
        ) from exc
    finally:
        connection.close()
