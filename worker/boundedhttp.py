"""uvicorn's httptools protocol with the connection bounds uvicorn lacks: a connection cap and read deadlines.

uvicorn bounds idle keep-alive connections (``timeout_keep_alive``) but not a connection that is slow to send
its request: one that sends a request line and stops stays open forever, and every one costs a socket and a
protocol object. It has no cap on open connections either (``limit_concurrency`` answers 503 to requests but
keeps accepting sockets). This subclass adds, per process:

- a cap on open connections: one above it is answered ``503`` with ``Retry-After`` and closed at once;
- a header deadline: from a connection's start, or a request's first byte, to the end of its headers;
- a body deadline: from the end of the headers to the end of the body (the app answers 408 a second
  earlier, when it is the one waiting);
- a bound on header bytes (request line included) and on header lines: httptools buffers a header until its
  end, and uvicorn appends every header to a list, so eight connections each sending one 40 MB header grew a
  shim by 275 MB before the header deadline closed them. Over either bound: ``431`` and closed. The byte count
  is taken after each read is parsed, so a connection holds at most the bound plus one read (64 KiB).

A connection that misses a deadline is answered ``408`` (if nothing was answered yet) and closed. An answer
given before the body was read to its end (401, 413, 503) says ``Connection: close`` and is followed by a
lingering close: the rest of the body is read and dropped for up to ``LINGER_SECONDS`` after a FIN, so the
client reads the answer instead of a connection reset, and nothing of the unread body is kept.

Tested with uvicorn 0.54.0 and httptools 0.9.0 (tests/test_shim_limits.py drives a real shim process); the
overridden methods (``connection_made``, ``connection_lost``, ``on_message_begin``, ``on_headers_complete``,
``on_message_complete``) are uvicorn's parser callbacks, stable since uvicorn 0.11. ``check_uvicorn`` warns at
start-up when the installed uvicorn is outside the tested range.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import structlog
from prometheus_client import Counter
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from worker.settings import Settings

log = structlog.get_logger(__name__)

PROTOCOL = "worker.boundedhttp:BoundedHttpToolsProtocol"
TESTED_UVICORN = ((0, 30), (0, 55))  # [lowest, highest) minor versions the subclass is tested against
CONFIG_ATTRIBUTE = "ims_connection_limits"
_SUMMARY_INTERVAL = 10.0
LINGER_SECONDS = 2.0


def _canned(status: bytes, body: bytes, *extra: bytes) -> bytes:
    head = [status, b"content-type: application/json", b"content-length: %d" % len(body), *extra]
    return b"\r\n".join([*head, b"connection: close", b"", body])


_REFUSED = _canned(
    b"HTTP/1.1 503 Service Unavailable",
    b'{"error":"too_many_connections","detail":"the shim is at its connection limit; retry later"}',
    b"retry-after: 5",
)
_HEADERS_TOO_LARGE = _canned(
    b"HTTP/1.1 431 Request Header Fields Too Large",
    b'{"error":"headers_too_large","detail":"the request line and headers exceed the server\'s limit"}',
)
_TIMED_OUT = _canned(
    b"HTTP/1.1 408 Request Timeout",
    b'{"error":"request_timeout","detail":"the request was not received in time"}',
)


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = 1000
    header_timeout: float = 5.0
    body_timeout: float = 11.0
    max_header_bytes: int = 32 * 1024
    max_header_lines: int = 100

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            max_connections=settings.shim_max_connections,
            header_timeout=settings.shim_header_timeout_seconds,
            # The app's own body timeout answers 408 first; this closes what it does not read.
            body_timeout=settings.shim_read_timeout_seconds + 1.0,
            max_header_bytes=settings.shim_max_header_bytes,
            max_header_lines=settings.shim_max_header_lines,
        )


# On the default registry (the consumer's /metrics); the shim registers it on its own too.
DROPPED = Counter(
    "ims_worker_http_connections_dropped_total",
    "Connections the bounded HTTP server refused at its connection cap (refused_over_limit) or closed "
    "because a request's headers or body missed their deadline (header_timeout, body_timeout) or its headers "
    "exceeded their size or line bound (headers_too_large)",
    ["reason"],
)


class _Tally:
    """Counts of refused and timed-out connections: a counter each, and a log line at most every few seconds
    (an attack sends thousands: one line each would flood the log)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._last = 0.0

    def add(self, what: str) -> None:
        DROPPED.labels(what).inc()
        self.counts[what] = self.counts.get(what, 0) + 1
        now = time.monotonic()
        if now - self._last >= _SUMMARY_INTERVAL:
            self._last = now
            log.warning("http.connections.dropped", **self.counts, detail="totals since start")


_process_limits = ConnectionLimits()
tally = _Tally()


def configure(settings: Settings) -> None:
    """Set this process's limits (the shim CLI, and each ``--workers`` process through the app factory)."""
    global _process_limits  # noqa: PLW0603 - one set of limits per process, read by every connection
    _process_limits = ConnectionLimits.from_settings(settings)


def check_uvicorn() -> None:
    major_minor = tuple(int(part) for part in version("uvicorn").split(".")[:2])
    low, high = TESTED_UVICORN
    if not low <= major_minor < high:
        log.warning(
            "http.uvicorn.untested",
            uvicorn=version("uvicorn"),
            detail="the connection limits subclass uvicorn's protocol; tested on 0.54",
        )


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits: ConnectionLimits = getattr(config, CONFIG_ATTRIBUTE, None) or _process_limits
        self._deadline: asyncio.TimerHandle | None = None
        self._pending: tuple[float, str] | None = None  # a deadline set during a read: (when, why)
        self._refused = False
        self._in_headers = False
        self._lingering = False
        self._close_after_response = False
        self._announced: object = None  # the request cycle whose answer may announce a close
        self._header_bytes = 0
        self._header_lines = 0
        self._too_large = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if len(self.connections) >= self.limits.max_connections:
            self._refused = True
            self.transport = transport  # type: ignore[assignment]
            transport.write(_REFUSED)  # type: ignore[attr-defined]
            transport.close()
            tally.add("refused_over_limit")
            return
        super().connection_made(transport)  # type: ignore[arg-type]
        self._in_headers = True
        self._arm(self.limits.header_timeout, "header_timeout")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._refused:
            return
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused or self._lingering or self._too_large:
            return
        super().data_received(data)
        cycle = self.cycle
        if cycle is not None and cycle.more_body and cycle is not self._announced:
            # This request's body goes on past this read, so its answer may start before the body's end (an
            # early 401, 413 or 503) and the connection then closes. A request whose body came with its
            # headers (most) cannot be answered early: it keeps uvicorn's own send. The app's task has not
            # started yet: it runs once this read is handled.
            self._announce_close(cycle)
        if self._in_headers and not self.transport.is_closing():
            # Still inside a request's headers after this read: every byte of it went to them (a pipelined
            # request that began inside the read counts the previous request's tail too: one read at most).
            self._header_bytes += len(data)
            if self._header_bytes > self.limits.max_header_bytes:
                self._headers_too_large()
        if self._pending is not None:
            when, reason = self._pending
            self._pending = None
            if not self.transport.is_closing():
                self._deadline = self.loop.call_at(when, self._expire, reason)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._too_large:
            return  # the rest of the read is parsed to its end; nothing more of it is kept
        self._header_lines += 1
        if self._header_lines > self.limits.max_header_lines:
            self._headers_too_large()
            return
        super().on_header(name, value)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._header_lines = 0
        self._in_headers = True
        self._arm_after_read(self.limits.header_timeout, "header_timeout")

    def on_headers_complete(self) -> None:
        if self._too_large:
            return
        self._in_headers = False
        self._arm_after_read(self.limits.body_timeout, "body_timeout")
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is None:
            return
        if not cycle.keep_alive:
            # uvicorn would close the socket as the answer is written, before an unread body is drained
            # (a reset the client sees instead of the answer); on_response_complete closes it instead.
            self._close_after_response = True
            cycle.keep_alive = True
            self._announce_close(cycle)

    def _announce_close(self, cycle: Any) -> None:
        """Make ``cycle``'s answer say ``Connection: close`` when this connection closes after it.

        That is when the answer starts before the body was read to its end (401, 413, 503: the connection
        lingers, then closes) or the client asked to close. Without the header a client keeps the connection
        for its next request and, if it looks before the server's FIN arrives, sends it into the closing
        socket: "server disconnected without sending a response" (seen under load in the fuzzing scenario).
        """
        self._announced = cycle
        send = cycle.send

        async def send_announcing_close(message: dict[str, Any]) -> None:
            starts = message["type"] == "http.response.start"
            if not starts or not (cycle.more_body or self._close_after_response):
                await send(message)
                return
            headers = [*message.get("headers", []), (b"connection", b"close")]
            await send({**message, "headers": headers})
            # uvicorn took the header as "close the socket after the body": on_response_complete does that
            # itself, after draining what is left of the request (the lingering close).
            self._close_after_response = True
            cycle.keep_alive = True

        cycle.send = send_announcing_close

    def on_body(self, body: bytes) -> None:
        if not self._too_large:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._too_large:
            return
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        cycle = self.cycle
        unread = cycle is not None and cycle.more_body
        # Pipelined requests queued: the answer that completed is an earlier one (uvicorn starts the next).
        pipelined = bool(self.pipeline)
        if pipelined or not (unread or self._close_after_response) or self.transport.is_closing():
            super().on_response_complete()
            return
        self.server_state.total_requests += 1  # as uvicorn's own method counts it (--limit-max-requests)
        if unread and cycle is not None:
            # Answered before the body was read to its end: drop the rest, then close.
            self._lingering = True
            cycle.body = bytearray()
            self.flow.resume_reading()
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self._arm(LINGER_SECONDS, "linger")
        else:
            self.transport.close()

    def _headers_too_large(self) -> None:
        # Inside a parser callback or after a read: the rest of this read is parsed but nothing of it is kept.
        self._too_large = True
        if self.transport.is_closing() or self._lingering:
            return
        tally.add("headers_too_large")
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # an earlier pipelined answer is still being written: no answer to splice
            return
        self.transport.write(_HEADERS_TOO_LARGE)
        # Lingering close, as for an early answer: the client reads the 431 rather than a connection reset.
        self._lingering = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._arm(LINGER_SECONDS, "linger")

    def _arm(self, seconds: float, reason: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expire, reason)

    def _arm_after_read(self, seconds: float, reason: str) -> None:
        """A deadline from now, set by a parser callback; its timer starts only if the read ends with the
        request still incomplete. Most requests arrive whole in one read, and need no timer at all."""
        self._disarm()
        self._pending = (self.loop.time() + seconds, reason)

    def _disarm(self) -> None:
        self._pending = None
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self, reason: str) -> None:
        self._deadline = None
        if self.transport is None or self.transport.is_closing():
            return
        if self._lingering:
            self.transport.close()
            return
        tally.add(reason)
        if self._in_headers or (self.cycle is not None and not self.cycle.response_started):
            self.transport.write(_TIMED_OUT)
        self.transport.close()
