"""What the shim's request handling passes around: the publisher it needs, one request's answer and trace,
and the JSON error bodies."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import orjson
import pydantic

from worker.events import Event

_JSON = b"application/json"


class PublishResultLike(Protocol):
    @property
    def event_id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def enqueued(self) -> bool: ...


class Publisher(Protocol):
    """What the shim needs of ``worker.delivery.publish.AsyncPublisher``."""

    async def publish(self, events: Sequence[Event]) -> Sequence[PublishResultLike]: ...
    async def ping(self) -> bool: ...
    async def aclose(self) -> None: ...


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: bytes = _JSON
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Trace:
    """What the access log and the metrics say about one request."""

    request_id: str
    provider: str | None = None
    event_ids: list[str] = field(default_factory=list)
    duplicates: int = 0
    error: str | None = None
    spooled: bool = False


def error_body(code: str, detail: str, request_id: str) -> bytes:
    return orjson.dumps({"error": code, "detail": detail, "request_id": request_id})


def validation_detail(exc: pydantic.ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()[:5]]
    return "; ".join(parts)
