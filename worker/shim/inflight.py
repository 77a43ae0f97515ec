"""A cap on the request-body bytes the shim holds at once, across all requests of a process.

The per-request limit (``IMS_WORKER_SHIM_MAX_BODY_BYTES``) bounds one body; this bounds their sum, so many
concurrent uploads cannot add up past the memory the process is given. Some bodies must be read whole before
they can be authenticated (Tencent's signature lives inside the body), so the cap applies before any
authentication. A request is charged its declared ``Content-Length`` before its first byte is read (or, for
chunked bodies, each chunk as it arrives); when the charge does not fit, reading stops and the request is
answered 503 with ``Retry-After`` and a JSON reason. The charge is returned once the request is answered.

A body that was not read to its end is not kept: the server protocol (``worker.shim.server``) discards the
rest and closes the connection after the answer.
"""

from __future__ import annotations

from worker.shim.errors import ShimError
from worker.shim.types import ASGIApp, Message, Receive, Scope, Send

RETRY_AFTER_SECONDS = "5"


class Overloaded(ShimError):
    """Raised when accepting a request body would exceed the in-flight body budget (503)."""

    status = 503
    code = "overloaded"


class BodyBudget:
    """Bytes reserved by requests in progress. One per process; the event loop is its only user."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self.refused = 0

    def try_reserve(self, size: int) -> bool:
        if self.in_use + size > self.limit:
            self.refused += 1
            return False
        self.in_use += size
        return True

    def release(self, size: int) -> None:
        self.in_use -= size


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


def _overloaded() -> Overloaded:
    return Overloaded(
        "the shim is holding as many request bodies as it may; retry later",
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


class BoundedBodies:
    """ASGI middleware: charges each HTTP request's body against ``budget``.

    ``max_body`` is the per-request limit: a declared length above it is not charged (the app refuses it with
    413 without reading it).
    """

    def __init__(self, app: ASGIApp, budget: BodyBudget, *, max_body: int) -> None:
        self.app = app
        self.budget = budget
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = _Request(self.budget, _declared_length(scope), self.max_body)
        try:
            await self.app(scope, request.wrap_receive(receive), send)
        finally:
            self.budget.release(request.reserved)


class _Request:
    def __init__(self, budget: BodyBudget, declared: int | None, max_body: int) -> None:
        self.budget = budget
        self.declared = declared if declared is not None and declared <= max_body else None
        self.reserved = 0
        self.received = 0

    def wrap_receive(self, receive: Receive) -> Receive:
        async def bounded_receive() -> Message:
            if self.declared is not None and not self.reserved and self.declared:
                if not self.budget.try_reserve(self.declared):
                    raise _overloaded()
                self.reserved = self.declared
            message = await receive()
            if message["type"] == "http.request":
                self.received += len(message.get("body", b""))
                extra = self.received - self.reserved
                if extra > 0:  # chunked, or more than declared (the app refuses that with 413)
                    if not self.budget.try_reserve(extra):
                        raise _overloaded()
                    self.reserved += extra
            return message

        return bounded_receive
