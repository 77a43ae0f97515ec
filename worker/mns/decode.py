"""Tolerant decoding of MNS message bodies: JSON as IMS writes it, else base64 of JSON (the SDK's default)."""

from __future__ import annotations

import base64
import binascii

_JSON_START = (b"{", b"[")


def decode_body(body: str | bytes) -> bytes:
    """The JSON text inside ``body``. Undecodable input is returned as it came, for ``normalize`` to reject
    with a precise reason (and for the dead-letter store to keep verbatim)."""
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    stripped = raw.lstrip()
    if stripped.startswith(_JSON_START):
        return raw
    try:
        decoded = base64.b64decode(stripped, validate=True)
    except (binascii.Error, ValueError):
        return raw
    if decoded.lstrip().startswith(_JSON_START):
        return decoded
    return raw
