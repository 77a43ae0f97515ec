"""The SDK client, minus its three most expensive steps on the consumer's hot path.

py-spy on ``ims-worker consume`` (see BENCHMARKS.md) found a third of the consumer's CPU in code that parses
what MNS sends: the SDK reads every BatchReceive answer with ``xml.dom.minidom`` and builds every BatchDelete
body with it (17%), and ``http.client`` hands every response's headers to the ``email`` package (13%).
``ConsumerClient`` keeps everything else of the SDK (signing, HTTP, retries, status checks, error decoding)
and swaps only those for ``xml.etree``, a string template and a direct header split. The results are the
same objects with the same values, which ``tests/test_mns_fastclient.py`` checks against the SDK and the
standard library on the same bytes.
"""

from __future__ import annotations

import base64
import email.parser
import http.client
import re
from collections.abc import Sequence
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from mns.mns_client import URISEC_MESSAGE, URISEC_QUEUE, MNSClient
from mns.mns_exception import MNSClientException, MNSClientNetworkException, MNSServerException
from mns.mns_http import RequestInternal
from mns.mns_request import (
    BatchDeleteMessageRequest,
    BatchDeleteMessageResponse,
    BatchReceiveMessageRequest,
    BatchReceiveMessageResponse,
    ReceiveMessageResponseEntry,
)
from mns.mns_tool import BatchDeleteMessageValidator, BatchReceiveMessageValidator
from mns.mns_xml_handler import XMLNS, BatchDeleteMessageDecoder, DecoderBase, ErrorDecoder

_PROLOG = '<?xml version="1.0" encoding="utf-8"?>'
_QUOTE = {'"': "&quot;"}  # minidom escapes double quotes in text too: keep the bytes identical
_PROPERTY_ITEMS = {"UserProperties": "PropertyValue", "SystemProperties": "SystemPropertyValue"}


# Limits of http.client (_MAXLINE, _MAXHEADERS), so a hostile peer gets the same refusal.
_MAX_LINE = 65536
_MAX_HEADERS = 100
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # what the email parser accepts as a field name


def parse_headers(fp: Any) -> http.client.HTTPMessage:
    """``http.client.parse_headers`` without the ``email`` feed parser for the plain case (one ``name: value``
    per line); anything else (folded lines, odd names) goes to the standard parser, unchanged."""
    lines: list[bytes] = []
    while True:
        line = fp.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise http.client.LineTooLong("header line")
        lines.append(line)
        if len(lines) > _MAX_HEADERS:
            raise http.client.HTTPException(f"got more than {_MAX_HEADERS} headers")
        if line in (b"\r\n", b"\n", b""):
            break
    text = b"".join(lines).decode("iso-8859-1")
    headers = []
    for line in lines if lines[-1] == b"" else lines[:-1]:
        name, colon, value = line.decode("iso-8859-1").rstrip("\r\n").partition(":")
        if not colon or "\r" in value or not _HEADER_NAME.fullmatch(name):
            # A rare shape (no colon, a bare CR, an odd name): the standard parser decides.
            return email.parser.Parser(_class=http.client.HTTPMessage).parsestr(text)
        headers.append((name, value.lstrip(" \t")))
    message = http.client.HTTPMessage()
    message._headers = headers  # type: ignore[attr-defined]  # what the email parser fills
    message._payload = ""  # type: ignore[attr-defined]
    return message


class _Response(http.client.HTTPResponse):
    # A copy of HTTPResponse.begin (CPython 3.11-3.13) with the header parser above: the standard one calls
    # the module-level parse_headers, which cannot be swapped for one connection only.
    def begin(self) -> None:
        if self.headers is not None:
            return
        while True:
            version, status, reason = self._read_status()
            if status != http.client.CONTINUE:
                break
            parse_headers(self.fp)  # the 100 response's headers, skipped
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        self.headers = self.msg = parse_headers(self.fp)
        encoding = self.headers.get("transfer-encoding")
        self.chunked = bool(encoding and encoding.lower() == "chunked")
        if self.chunked:
            self.chunk_left = None
        self.will_close = self._check_close()
        self.length = self._body_length(status)
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True

    def _body_length(self, status: int) -> int | None:
        if status in (http.client.NO_CONTENT, http.client.NOT_MODIFIED) or 100 <= status < 200:
            return 0
        if self._method == "HEAD":  # type: ignore[attr-defined]
            return 0
        length = self.headers.get("content-length")
        if not length or self.chunked:
            return None
        try:
            value = int(length)
        except ValueError:
            return None
        return value if value >= 0 else None  # nonsensical negative lengths are ignored


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]  # "{http://mns.aliyuncs.com/doc/v1/}Message" -> "Message"


def _properties(node: ElementTree.Element) -> dict[str, list[dict[str, str]]]:
    item_name = _PROPERTY_ITEMS[_local(node.tag)]
    values = []
    for item in node:
        if _local(item.tag) == item_name:
            fields = {_local(field.tag): field.text for field in item if field.text}
            if fields:
                values.append(fields)
    return {item_name: values} if values else {}


def _message_fields(message: ElementTree.Element) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for node in message:
        name = _local(node.tag)
        if name in _PROPERTY_ITEMS:
            properties = _properties(node)
            if properties:
                fields[name] = properties
        elif node.text:  # the SDK skips empty elements too
            fields[name] = node.text
    return fields


def decode_batch_receive(
    xml_data: bytes | str, base64decode: bool, req_id: str | None = None
) -> list[ReceiveMessageResponseEntry]:
    """What ``mns.mns_xml_handler.BatchRecvMessageDecoder.decode`` returns, errors included."""
    if not xml_data:
        raise MNSClientNetworkException("RespDataDamaged", 'Xml data is ""!', req_id)
    try:
        # The MNS endpoint's answer, read by the same expat parser the SDK's minidom uses.
        root = ElementTree.fromstring(xml_data)  # noqa: S314
    except ElementTree.ParseError:
        raise MNSClientNetworkException("RespDataDamaged", xml_data, req_id) from None
    messages = next((node for node in root.iter() if _local(node.tag) == "Messages"), None)
    if messages is None:
        raise MNSClientNetworkException("RespDataDamaged", "No element with tag name 'Messages'.", req_id)
    entries = []
    try:
        for node in messages:
            if _local(node.tag) != "Message":
                continue
            fields = _message_fields(node)
            entry = ReceiveMessageResponseEntry()
            body = fields["MessageBody"]
            entry.message_body = base64.b64decode(body) if base64decode else body
            entry.dequeue_count = int(fields["DequeueCount"])
            entry.enqueue_time = int(fields["EnqueueTime"])
            entry.first_dequeue_time = int(fields["FirstDequeueTime"])
            entry.message_id = fields["MessageId"]
            entry.message_body_md5 = fields["MessageBodyMD5"]
            entry.priority = int(fields["Priority"])
            entry.next_visible_time = int(fields["NextVisibleTime"])
            entry.receipt_handle = fields["ReceiptHandle"]
            entry.message_group_id = fields.get("MessageGroupId", "")
            entry.user_properties = DecoderBase.parse_user_properties_from_dict(fields)
            entry.system_properties = DecoderBase.parse_system_properties_from_dict(fields)
            entries.append(entry)
    except (KeyError, ValueError, TypeError, MNSClientException):  # what the SDK's catch-all meets here
        raise MNSClientNetworkException("RespDataDamaged", xml_data, req_id) from None
    return entries


def encode_receipt_handles(handles: Sequence[str]) -> bytes:
    """The BatchDeleteMessage body, as ``ReceiptHandlesEncoder.encode`` renders it."""
    items = "".join(f"<ReceiptHandle>{escape(handle, _QUOTE)}</ReceiptHandle>" for handle in handles)
    return f'{_PROLOG}<ReceiptHandles xmlns="{XMLNS}">{items}</ReceiptHandles>'.encode()


class ConsumerClient(MNSClient):  # type: ignore[misc]  # the SDK is untyped
    """``MNSClient`` with the two methods below rewired (each mirrors the SDK's method of the same name) and
    the header parser above on its HTTP connection."""

    def use_fast_responses(self) -> None:
        """Call after every change of ``self.http.conn`` (``set_connection_timeout`` makes a new one)."""
        self.http.conn.response_class = _Response

    def check_status(self, req_inter: Any, resp_inter: Any, resp: Any, decoder: Any = ErrorDecoder) -> None:
        """The SDK's check, plus what an operator needs on a refusal (``worker.mns.explain``): the
        AccessKey id that signed, and both clocks (the request's Date and the server's)."""
        try:
            super().check_status(req_inter, resp_inter, resp, decoder)
        except MNSServerException as exc:
            authorization = req_inter.header.get("Authorization", "")
            exc.key_id = authorization.removeprefix("MNS ").rpartition(":")[0]
            exc.request_date = req_inter.header.get("date")
            exc.server_date = next(
                (value for name, value in resp_inter.header.items() if name.lower() == "date"), None
            )
            raise

    def batch_receive_message(
        self, req: BatchReceiveMessageRequest, resp: BatchReceiveMessageResponse
    ) -> None:
        BatchReceiveMessageValidator.validate(req)
        url = f"/{URISEC_QUEUE}/{req.queue_name}/{URISEC_MESSAGE}?numOfMessages={req.batch_size}"
        if req.wait_seconds != -1:
            url += f"&waitseconds={req.wait_seconds}"
        req_inter = RequestInternal(req.method, url)
        self.build_header(req, req_inter)
        resp_inter = self.http.send_request(req_inter)
        resp.status = resp_inter.status
        resp.header = resp_inter.header
        self.check_status(req_inter, resp_inter, resp)
        if resp.error_data == "":
            resp.message_list = decode_batch_receive(
                resp_inter.data, req.base64decode, req_inter.get_req_id()
            )

    def batch_delete_message(self, req: BatchDeleteMessageRequest, resp: BatchDeleteMessageResponse) -> None:
        BatchDeleteMessageValidator.validate(req)
        req_inter = RequestInternal(req.method, f"/{URISEC_QUEUE}/{req.queue_name}/{URISEC_MESSAGE}")
        req_inter.data = encode_receipt_handles(req.receipt_handle_list)
        self.build_header(req, req_inter)
        resp_inter = self.http.send_request(req_inter)
        resp.status = resp_inter.status
        resp.header = resp_inter.header
        self.check_status(req_inter, resp_inter, resp, BatchDeleteMessageDecoder)
