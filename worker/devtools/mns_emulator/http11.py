"""Minimal HTTP/1.1 request framing (request line, headers, Content-Length body, keep-alive).

The stdlib ``BaseHTTPRequestHandler`` parses headers with the ``email`` package, which costs more than the
whole MNS operation for small requests; the MNS SDK only ever sends simple ``Content-Length`` requests, so
a direct parser is enough and keeps the emulator fast enough for benchmarks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

MAX_LINE = 65536
MAX_HEADERS = 100
MAX_BODY = 4 * 1024 * 1024


class Reader(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...

    def read(self, size: int = -1, /) -> bytes: ...


class HeaderMap:
    """Headers as sent (``items``) plus case-insensitive lookup (``get``)."""

    __slots__ = ("_items", "_lower")

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items
        self._lower = {name.lower(): value for name, value in items}

    def get(self, name: str, /) -> str | None:
        return self._lower.get(name.lower())

    def items(self) -> Iterable[tuple[str, str]]:
        return self._items


class BadRequest(Exception):
    """The bytes on the wire are not an HTTP/1.x request we can frame: answer 400 and close."""


@dataclass
class RawRequest:
    method: str
    uri: str
    version: str
    headers: HeaderMap
    content_length: int

    @property
    def keep_alive(self) -> bool:
        connection = (self.headers.get("Connection") or "").lower()
        if self.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"


def read_request_head(rfile: Reader) -> RawRequest | None:
    """Read a request line and headers; None when the client closed the connection cleanly."""
    line = rfile.readline(MAX_LINE + 1)
    while line in (b"\r\n", b"\n"):  # tolerate stray blank lines between keep-alive requests
        line = rfile.readline(MAX_LINE + 1)
    if not line:
        return None
    if len(line) > MAX_LINE:
        raise BadRequest("request line too long")
    parts = line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(f"malformed request line {line[:100]!r}")
    method, uri, version = parts
    items: list[tuple[str, str]] = []
    while True:
        raw = rfile.readline(MAX_LINE + 1)
        if not raw:
            raise BadRequest("connection closed inside the headers")
        if raw in (b"\r\n", b"\n"):
            break
        if len(raw) > MAX_LINE or len(items) >= MAX_HEADERS:
            raise BadRequest("headers too large")
        name, sep, value = raw.decode("latin-1").partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(f"malformed header line {raw[:100]!r}")
        items.append((name, value.strip()))
    headers = HeaderMap(items)
    if headers.get("Transfer-Encoding"):
        raise BadRequest("chunked request bodies are not supported; send Content-Length")
    try:
        length = int(headers.get("Content-Length") or 0)
    except ValueError:
        raise BadRequest("bad Content-Length") from None
    if not 0 <= length <= MAX_BODY:
        raise BadRequest(f"Content-Length {length} out of range")
    return RawRequest(method, uri, version, headers, length)


def read_body(rfile: Reader, length: int) -> bytes:
    if not length:
        return b""
    body = rfile.read(length)
    if len(body) != length:
        raise BadRequest("connection closed inside the body")
    return body
