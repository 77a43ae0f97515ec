"""Transport-neutral request and response records, and raw query parsing."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote

from worker.mns.emulator.auth import Headers


def parse_query(raw: str) -> dict[str, str]:
    """Query parameters with lower-cased names, values kept raw.

    The SDK does not URL-encode the receipt handle, which is base64 and so may contain ``+``: the usual
    ``parse_qs`` would turn it into a space. Values are only percent-decoded when they hold a ``%`` (a
    client that does encode), and ``+`` is never touched.
    """
    params: dict[str, str] = {}
    for pair in raw.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        params[name.lower()] = unquote(value) if "%" in value else value
    return params


@dataclass
class Request:
    method: str
    uri: str  # exactly as on the request line: the signature covers it
    headers: Headers
    body: bytes
    host: str  # the Host header, for the Location of created queues

    path: str = field(init=False)
    query: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        path, _, raw_query = self.uri.partition("?")
        self.path = path
        self.query = parse_query(raw_query)


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    operation: str = ""
