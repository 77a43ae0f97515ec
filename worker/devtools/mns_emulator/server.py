"""Threaded HTTP/1.1 keep-alive server: one thread per connection, so a long poll never blocks another client.

Faults are applied here because they are about the transport: latency before handling, a connection reset
(RST, so the SDK sees a network error rather than a clean close it would silently retry) before or after
handling, or a 500/503 instead of handling.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import struct
import sys
import threading
import time
from email.utils import formatdate
from typing import Any

import structlog

from worker.devtools.mns_emulator.admin import ADMIN_PREFIX, AdminApi
from worker.devtools.mns_emulator.auth import API_VERSION
from worker.devtools.mns_emulator.errors import MnsError
from worker.devtools.mns_emulator.http11 import BadRequest, RawRequest, read_body, read_request_head
from worker.devtools.mns_emulator.http_types import Request, Response
from worker.devtools.mns_emulator.ids import IdSource
from worker.devtools.mns_emulator.service import MnsService

log = structlog.get_logger(__name__)

_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST instead of FIN
_REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 403: "Forbidden",
            404: "Not Found", 408: "Request Timeout", 409: "Conflict", 500: "Internal Server Error",
            503: "Service Unavailable"}  # fmt: skip
SERVER_NAME = "MNS-Emulator/1.0"


class EmulatorHTTPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], service: MnsService, ids: IdSource, admin: AdminApi | None):
        self.service = service
        self.ids = ids
        self.admin = admin
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(conn)

    def close_connections(self) -> None:
        """Cut every open keep-alive connection, so that stopped really means unreachable."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):  # already gone
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            return  # the client went away (or we reset it on purpose)
        log.error("mns.emulator.handler_error", client=str(client_address), exc_info=exc)


class _Handler(socketserver.StreamRequestHandler):
    server: EmulatorHTTPServer
    _aborted = False
    _keep_alive = True

    def setup(self) -> None:
        super().setup()
        # One write per response plus TCP_NODELAY: no Nagle/delayed-ACK stalls on small answers.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)
            if self._aborted:
                self.connection.close()  # with SO_LINGER 0: RST

    def handle(self) -> None:
        while self._keep_alive and not self._aborted:
            request_id = self.server.ids.request_id()
            try:
                head = read_request_head(self.rfile)
                if head is None:
                    return
                self._keep_alive = head.keep_alive
                self._dispatch(head, request_id)
            except BadRequest as exc:
                self._keep_alive = False
                error = MnsError("InvalidRequestURL", f"Http request format invalid: {exc}.")
                self._write(self.server.service.error(error, request_id), request_id)

    def _dispatch(self, head: RawRequest, request_id: str) -> None:
        server = self.server
        if server.admin is not None and head.uri.startswith(ADMIN_PREFIX):
            body = read_body(self.rfile, head.content_length)
            self._write(server.admin.handle(head.method, head.uri, body), request_id)
            return

        plan = server.service.faults.plan()
        if plan.latency:
            time.sleep(plan.latency)
        if plan.drop:
            self._abort()
            return
        body = read_body(self.rfile, head.content_length)
        host = head.headers.get("Host") or "{}:{}".format(*server.server_address[:2])
        request = Request(head.method, head.uri, head.headers, body, host)
        if plan.error_status is not None:
            code = "ServiceUnavailable" if plan.error_status == 503 else "InternalError"
            error = MnsError(code, "Emulated failure (fault injection).", plan.error_status)
            response = server.service.error(error, request_id)
            server.service.count(request, response)
        else:
            response = server.service.handle(request, request_id)
        if plan.drop_response:
            self._abort()
            return
        self._write(response, request_id)

    def _abort(self) -> None:
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        self._aborted = True

    def _write(self, response: Response, request_id: str) -> None:
        head = [
            f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Unknown')}",
            f"Server: {SERVER_NAME}",
            f"Date: {http_date(self.server.service.authenticator.clock_offset_seconds)}",
            # Lower case on purpose: the SDK looks it up in a case-sensitive dict.
            f"x-mns-request-id: {request_id}",
            f"x-mns-version: {API_VERSION}",
            f"Content-Length: {len(response.body)}",
            f"Connection: {'keep-alive' if self._keep_alive else 'close'}",
        ]
        head += [f"{name}: {value}" for name, value in response.headers.items()]
        self.wfile.write("\r\n".join(head).encode("latin-1") + b"\r\n\r\n" + response.body)


_date_cache: tuple[int, str] = (0, "")


def http_date(offset_seconds: float = 0.0) -> str:
    """The Date header, formatted once per second (``offset_seconds``: a server clock that is off)."""
    global _date_cache  # noqa: PLW0603 - a benign race: worst case two threads format the same second
    now = int(time.time() + offset_seconds)
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]
