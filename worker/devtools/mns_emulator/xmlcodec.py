"""XML in and out, the way the SDK writes and reads it (namespace ``http://mns.aliyuncs.com/doc/v1/``)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence

from worker.devtools.mns_emulator.errors import MnsError

XMLNS = "http://mns.aliyuncs.com/doc/v1/"
_PROLOG = '<?xml version="1.0" encoding="UTF-8"?>\n'

Field = tuple[str, "str | int"]


def escape(text: str) -> str:
    """Escape element content. "\\r" is escaped too: a bare CR would be normalised away by the client's XML
    parser and change the body (and its MD5) in transit. (Chained ``in``/``replace`` beats ``translate``
    several times over on the common case of nothing to escape.)"""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    if "\r" in text:
        text = text.replace("\r", "&#13;")
    return text


def _inner(fields: Iterable[Field]) -> str:
    return "".join(
        f"<{name}>{value}</{name}>" if isinstance(value, int) else f"<{name}>{escape(value)}</{name}>"
        for name, value in fields
    )


def element(tag: str, fields: Iterable[Field]) -> str:
    return f"<{tag}>{_inner(fields)}</{tag}>"


def document(root: str, fields: Iterable[Field]) -> bytes:
    """``<root xmlns=...><a>1</a>...</root>``: one flat record (Message, Queue, ChangeVisibility...)."""
    return f'{_PROLOG}<{root} xmlns="{XMLNS}">{_inner(fields)}</{root}>'.encode()


def list_document(root: str, item: str, records: Sequence[Iterable[Field]], tail: str = "") -> bytes:
    """``<root xmlns=...><item>...</item>...</root>``: Messages, Errors, Queues."""
    inner = "".join(element(item, fields) for fields in records)
    return f'{_PROLOG}<{root} xmlns="{XMLNS}">{inner}{tail}</{root}>'.encode()


def error_document(code: str, message: str, request_id: str, host_id: str) -> bytes:
    # All four elements are required: without them the SDK raises "RespDataDamaged" instead of the error.
    fields: list[Field] = [
        ("Code", code),
        ("Message", message),
        ("RequestId", request_id),
        ("HostId", host_id),
    ]
    return document("Error", fields)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse(body: bytes, roots: Sequence[str]) -> tuple[str, ET.Element]:
    """Parse a request body whose root must be one of ``roots``; returns (root name, element)."""
    if not body.strip():
        raise MnsError("MalformedXML", "The XML you provided was not well-formed: the body is empty.")
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        # The SDK never sends a DTD; refusing one keeps entity-expansion attacks out of the parser.
        raise MnsError("MalformedXML", "The XML you provided was not well-formed: DTDs are not accepted.")
    try:
        root = ET.fromstring(body)  # noqa: S314 - DTDs are rejected above
    except ET.ParseError as exc:
        raise MnsError("MalformedXML", f"The XML you provided was not well-formed: {exc}.") from exc
    name = _local(root.tag)
    if name not in roots:
        expected = " or ".join(roots)
        raise MnsError("InvalidArgument", f"The XML root element must be {expected}, not {name}.")
    return name, root


def fields_of(node: ET.Element) -> dict[str, str]:
    """Child elements of ``node`` as {local name: text} (nested elements are ignored)."""
    return {_local(child.tag): child.text or "" for child in node}


def items_of(root: ET.Element, item: str) -> list[ET.Element]:
    return [child for child in root if _local(child.tag) == item]
