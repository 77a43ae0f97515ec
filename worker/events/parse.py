"""Raw payload -> one JSON object, with the error message saying exactly what is wrong."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from worker.errors import InvalidPayload

_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}


def load_object(raw: bytes | bytearray | memoryview | str | Mapping[str, Any]) -> dict[str, Any]:
    """The JSON object in ``raw`` (JSON text, or an already decoded mapping).

    A mapping is re-encoded and decoded so that ``raw`` is plain JSON data, whatever mapping or value types
    the caller used, and an event's ``raw`` always survives the broker unchanged.
    """
    if isinstance(raw, Mapping):
        try:
            raw = orjson.dumps(dict(raw))
        except (TypeError, orjson.JSONEncodeError) as exc:
            raise InvalidPayload(f"payload is not representable as JSON: {exc}") from None
    if isinstance(raw, bytes | bytearray | memoryview | str):
        if not raw or (isinstance(raw, str) and not raw.strip()):
            raise InvalidPayload("payload is empty: expected a JSON object")
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidPayload(f"payload is not valid JSON: {exc}") from None
    else:
        raise InvalidPayload(f"payload must be JSON text or a mapping, not {type(raw).__name__}")
    if not isinstance(value, dict):
        kind = "null" if value is None else _KINDS.get(type(value), type(value).__name__)
        raise InvalidPayload(f"payload must be a JSON object, got {kind}")
    return value


def canonical(value: Any) -> bytes:
    """Sorted-keys compact JSON: the same bytes for the same data however it was formatted on the wire."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as exc:  # only nesting deeper than orjson's limit gets here
        raise InvalidPayload(f"payload is nested too deeply: {exc}") from None
