"""HTTP/1.1 keep-alive server: one thread per connection, so a long poll never blocks another client.

Faults are applied here because they are about the transport: latency before handling, a connection reset
(RST, so the SDK sees a network error rather than a clean close it would silently retry) before or after
handling, or a 500/503 instead of handling.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import sys
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog

from worker.mns.emulator.admin import ADMIN_PREFIX, AdminApi
from worker.mns.emulator.auth import API_VERSION
from worker.mns.emulator.errors import MnsError
from worker.mns.emulator.http_types import Request, Response
from worker.mns.emulator.ids import IdSource
from worker.mns.emulator.service import MnsService

log = structlog.get_logger(__name__)

_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST instead of FIN
_REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 403: "Forbidden",
            404: "Not Found", 408: "Request Timeout", 409: "Conflict", 500: "Internal Server Error",
            503: "Service Unavailable"}  # fmt: skip
MAX_BODY = 4 * 1024 * 1024


def _content_length(value: str | None) -> int | None:
    try:
        length = int(value or 0)
    except ValueError:
        return None
    return length if 0 <= length <= MAX_BODY else None


class EmulatorHTTPServer(ThreadingHTTPServer):
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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "MNS-Emulator/1.0"
    sys_version = ""
    server: EmulatorHTTPServer
    _aborted = False

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

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request on stderr would drown everything else

    def do_GET(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        server = self.server
        request_id = server.ids.request_id()
        length = _content_length(self.headers.get("Content-Length"))
        if length is None:
            error = MnsError("InvalidArgument", "Bad Content-Length.")
            self._write(server.service.error(error, request_id), request_id)
            self.close_connection = True
            return
        if server.admin is not None and self.path.startswith(ADMIN_PREFIX):
            body = self.rfile.read(length) if length else b""
            self._write(server.admin.handle(self.command, self.path, body), request_id)
            return

        plan = server.service.faults.plan()
        if plan.latency:
            time.sleep(plan.latency)
        if plan.drop:
            self._abort()
            return
        body = self.rfile.read(length) if length else b""
        if plan.error_status is not None:
            code = "ServiceUnavailable" if plan.error_status == 503 else "InternalError"
            error = MnsError(code, "Emulated failure (fault injection).", plan.error_status)
            response = server.service.error(error, request_id)
        else:
            host = self.headers.get("Host") or "{}:{}".format(*server.server_address[:2])
            request = Request(self.command, self.path, self.headers, body, host)
            response = server.service.handle(request, request_id)
        if plan.drop_response:
            self._abort()
            return
        self._write(response, request_id)

    def _abort(self) -> None:
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        self._aborted = True
        self.close_connection = True

    def _write(self, response: Response, request_id: str) -> None:
        headers = {
            "Server": self.server_version,
            "Date": formatdate(usegmt=True),
            # Lower case on purpose: the SDK looks it up in a case-sensitive dict.
            "x-mns-request-id": request_id,
            "x-mns-version": API_VERSION,
            "Content-Length": str(len(response.body)),
            "Connection": "close" if self.close_connection else "keep-alive",
        }
        headers.update(response.headers)
        reason = _REASONS.get(response.status, "Unknown")
        head = f"HTTP/1.1 {response.status} {reason}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()
        )
        self.wfile.write(head.encode("latin-1") + b"\r\n" + response.body)
