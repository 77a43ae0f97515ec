"""Transport-neutral request and response records, and raw query parsing."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote

from worker.devtools.mns_emulator.auth import Headers


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


def operation_name(req: Request) -> str:
    """The MNS API name of a request, for the emulator's counters ("Unknown" off the queue API)."""
    parts, query = req.path.split("/"), req.query
    if parts[:2] != ["", "queues"] or len(parts) > 4:
        return "Unknown"
    if len(parts) == 2:
        names = {"GET": "ListQueue"}
    elif len(parts) == 3:
        override = query.get("metaoverride", "").lower() == "true"
        put = "SetQueueAttributes" if override else "CreateQueue"
        names = {"PUT": put, "GET": "GetQueueAttributes", "DELETE": "DeleteQueue"}
    else:
        batch = "Batch" if "numofmessages" in query else ""
        peek = query.get("peekonly", "").lower() == "true"
        names = {
            "GET": f"{batch}{'PeekMessage' if peek else 'ReceiveMessage'}",
            "POST": "BatchSendMessage" if b"<Messages" in req.body[:512] else "SendMessage",
            "DELETE": "DeleteMessage" if "receipthandle" in query else "BatchDeleteMessage",
            "PUT": "ChangeMessageVisibility",
        }
    return names.get(req.method, "Unknown")


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
