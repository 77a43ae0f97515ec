"""Request bodies: a size limit enforced while reading, JSON and form parsing with clear errors.

The limit is checked twice: against ``Content-Length`` before reading anything, and against the running total
while chunks arrive (chunked uploads and lying clients), so an oversize body is refused with 413 without ever
being held in memory.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qsl

from worker.shim.errors import (
    BadRequest,
    ClientDisconnected,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
)
from worker.shim.types import Receive

try:  # orjson is several times faster than the standard library on the hot path; both give line/column.
    import orjson

    _loads: Any = orjson.loads
    _JSONError: type[ValueError] = orjson.JSONDecodeError
except ImportError:  # pragma: no cover - orjson is a dependency; this keeps the shim working without it
    import json

    _loads = json.loads
    _JSONError = json.JSONDecodeError

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
_MAX_FORM_FIELDS = 200


def media_type(content_type: str | None) -> str:
    """``application/json; charset=utf-8`` -> ``application/json``; missing -> ``""``."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def body_kind(content_type: str | None, *, accept_form: bool) -> str:
    """Which parser to use: ``json`` or ``form``; raises ``UnsupportedMediaType`` for anything else.

    A missing Content-Type is read as JSON: some providers omit it, and the body is validated anyway.
    """
    kind = media_type(content_type)
    if kind in ("", JSON, "text/json") or (kind.startswith("application/") and kind.endswith("+json")):
        return "json"
    if accept_form and kind == FORM:
        return "form"
    accepted = f"{JSON} or {FORM}" if accept_form else JSON
    raise UnsupportedMediaType(f"Content-Type {kind!r} is not accepted here; send {accepted}")


async def read_body(receive: Receive, *, limit: int, declared_length: str | None, timeout: float) -> bytes:
    """The whole body, refusing with 413 as soon as it is known to exceed ``limit`` bytes."""
    if declared_length is not None:
        if not declared_length.strip().isdigit():
            raise BadRequest("Content-Length is not a number", code="bad_content_length")
        if int(declared_length) > limit:
            raise PayloadTooLarge(f"body of {int(declared_length)} bytes exceeds the limit of {limit} bytes")
    try:
        async with asyncio.timeout(timeout):
            return await _read_chunks(receive, limit)
    except TimeoutError:
        raise RequestTimeout(f"body not received within {timeout:g} s") from None


async def _read_chunks(receive: Receive, limit: int) -> bytes:
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientDisconnected
    body: bytes = message.get("body", b"")
    if len(body) > limit:
        raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
    if not message.get("more_body", False):
        return body  # the common case: one chunk, no copy
    chunks = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _type_name(value: object) -> str:
    return {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def parse_json_object(body: bytes | str, *, what: str = "the body") -> dict[str, Any]:
    """Parse a JSON object; the error names what was wrong and where (line, column)."""
    if not body or not body.strip():
        raise BadRequest(f"{what} is empty; expected a JSON object", code="invalid_json")
    try:
        value = _loads(body)
    except _JSONError as exc:
        raise BadRequest(f"{what} is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object, got {_type_name(value)}", code="invalid_json")
    return value


def parse_form(body: bytes) -> dict[str, Any]:
    """An ``application/x-www-form-urlencoded`` body as the JSON object it carries.

    Older RTC subscriptions post either one form field whose value is the whole JSON message, or the message's
    top-level fields flat (``MsgId=...&Contents=[...]``), with JSON-looking values (``Contents``) as JSON.
    """
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True, max_num_fields=_MAX_FORM_FIELDS)
    except UnicodeDecodeError:
        raise BadRequest("the form body is not valid UTF-8", code="invalid_form") from None
    except ValueError as exc:
        raise BadRequest(f"the form body is malformed: {exc}", code="invalid_form") from None
    if len(pairs) == 1 and pairs[0][1].lstrip().startswith("{"):
        name, value = pairs[0]
        return parse_json_object(value, what=f"form field {name!r}")
    fields: dict[str, Any] = {}
    for name, value in pairs:
        if name in fields:
            raise BadRequest(f"form field {name!r} is given more than once", code="invalid_form")
        stripped = value.lstrip()
        if stripped.startswith(("[", "{")):
            try:
                fields[name] = _loads(value)
            except _JSONError as exc:
                raise BadRequest(
                    f"form field {name!r} is not valid JSON: {exc}", code="invalid_form"
                ) from None
        else:
            fields[name] = value
    if not fields:
        raise BadRequest("the form body is empty; expected the RTC message fields", code="invalid_form")
    return fields
