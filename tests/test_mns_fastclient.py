"""``worker.mns.fastclient`` against the SDK's own minidom codec and the standard library's header parser:
the same bytes give the same messages, the same errors, the same BatchDelete body and the same headers.
The consumer's end-to-end behaviour on it is in ``test_consumer.py``."""

from __future__ import annotations

import base64
import http.client
import io
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mns.mns_exception import MNSClientNetworkException
from mns.mns_request import ReceiveMessageResponseEntry
from mns.mns_xml_handler import BatchRecvMessageDecoder, ReceiptHandlesEncoder

from worker.devtools.mns_emulator.xmlcodec import XMLNS, escape, list_document
from worker.mns.client import open_queue
from worker.mns.fastclient import ConsumerClient, decode_batch_receive, encode_receipt_handles, parse_headers
from worker.settings import Settings

# Text XML 1.0 can carry (the emulator refuses the rest at SendMessage, as MNS does).
xml_text = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00\ufffe\uffff").filter(
        lambda c: c in "\t\n\r" or ord(c) >= 0x20
    ),
    min_size=1,
    max_size=60,
)
properties = st.lists(
    st.tuples(st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,8}", fullmatch=True), xml_text), max_size=3
)


def _entry_fields(entry: ReceiveMessageResponseEntry) -> dict[str, Any]:
    fields = dict(vars(entry))
    for key in ("user_properties", "system_properties"):
        fields[key] = {name: vars(value) for name, value in fields[key].items()}
    return fields


def _property_xml(tag: str, item: str, values: list[tuple[str, str]]) -> str:
    inner = "".join(
        f"<{item}><Name>{name}</Name><Value>{escape(value)}</Value><Type>STRING</Type></{item}>"
        for name, value in values
    )
    return f"<{tag}>{inner}</{tag}>"


def _messages_xml(bodies: list[str], user: list[tuple[str, str]], system: list[tuple[str, str]]) -> bytes:
    records: list[list[tuple[str, str | int]]] = [
        [
            ("MessageId", f"id-{i}"),
            ("ReceiptHandle", f"handle&{i}<x>"),
            ("MessageBodyMD5", "D41D8CD98F00B204E9800998ECF8427E"),
            ("MessageBody", body),
            ("EnqueueTime", 1700000000000 + i),
            ("NextVisibleTime", 1700000030000 + i),
            ("FirstDequeueTime", 1700000000001),
            ("DequeueCount", i + 1),
            ("Priority", 8),
        ]
        for i, body in enumerate(bodies)
    ]
    document = list_document("Messages", "Message", records).decode()
    if user or system:  # properties ride inside the first message, after its plain fields
        extra = _property_xml("UserProperties", "PropertyValue", user)
        extra += _property_xml("SystemProperties", "SystemPropertyValue", system)
        document = document.replace("</Message>", extra + "</Message>", 1)
    return document.encode()


def _both(xml: bytes | str, base64decode: bool = False) -> tuple[Any, Any]:
    def run(decode: Any) -> Any:
        try:
            return [_entry_fields(entry) for entry in decode(xml, base64decode, "req-1")]
        except MNSClientNetworkException as exc:
            return ("error", exc.type, exc.req_id)

    return run(BatchRecvMessageDecoder.decode), run(decode_batch_receive)


@given(st.lists(xml_text, min_size=1, max_size=16), properties, properties)
def test_decodes_what_the_sdk_decodes(bodies: list[str], user: Any, system: Any) -> None:
    sdk, ours = _both(_messages_xml(bodies, user, system))
    assert ours == sdk
    assert isinstance(ours, list)
    assert [m["message_body"] for m in ours] == bodies  # the emulator escapes "\\r", so it survives
    assert set(ours[0]["user_properties"]) == {name for name, _ in user}


@given(st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=4))
def test_base64_bodies_decode_alike(raw: list[bytes]) -> None:
    sdk, ours = _both(_messages_xml([base64.b64encode(b).decode() for b in raw], [], []), base64decode=True)
    assert ours == sdk
    assert [m["message_body"] for m in ours] == raw


@pytest.mark.parametrize(
    "xml",
    [
        b"",
        b"not xml",
        b"<?xml version='1.0'?><Messages xmlns='x'><Message>",  # truncated in transit
        f'<Queue xmlns="{XMLNS}"><QueueName>q</QueueName></Queue>'.encode(),  # no <Messages>
        # fields missing
        f'<Messages xmlns="{XMLNS}"><Message><MessageId>m</MessageId></Message></Messages>'.encode(),
        f'<Messages xmlns="{XMLNS}"><Message><MessageBody>b</MessageBody><DequeueCount>x</DequeueCount>'
        f"</Message></Messages>".encode(),
    ],
    ids=["empty", "garbage", "truncated", "wrong-root", "missing-fields", "non-numeric"],
)
def test_damaged_answers_raise_what_the_sdk_raises(xml: bytes) -> None:
    sdk, ours = _both(xml)
    assert sdk[:2] == ("error", "RespDataDamaged")
    assert ours[:2] == sdk[:2]


def test_an_empty_messages_element_is_no_messages_for_both() -> None:
    assert _both(f'<Messages xmlns="{XMLNS}"></Messages>'.encode()) == ([], [])


@given(st.lists(xml_text, min_size=1, max_size=16))
def test_delete_body_is_byte_identical(handles: list[str]) -> None:
    assert encode_receipt_handles(handles) == ReceiptHandlesEncoder.encode(handles)


def _message_state(message: Any) -> dict[str, Any]:
    state = dict(vars(message))
    state["defects"] = [type(defect).__name__ for defect in state["defects"]]
    return state


header_line = st.one_of(
    st.tuples(
        st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,12}", fullmatch=True),
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=20),
    ).map(lambda pair: f"{pair[0]}:{pair[1]}\r\n"),
    st.sampled_from(["  folded\r\n", "no colon\r\n", "Sp ace: x\r\n", "A: b\rc\r\n", "From x\r\n", "B:\n"]),
)


@given(st.lists(header_line, max_size=8), st.sampled_from(["\r\n", "\n", ""]))
def test_headers_parse_as_the_standard_library_parses_them(lines: list[str], end: str) -> None:
    raw = ("".join(lines) + end).encode("iso-8859-1")
    assert _message_state(parse_headers(io.BytesIO(raw))) == _message_state(
        http.client.parse_headers(io.BytesIO(raw))
    )


def test_header_limits_are_the_standard_librarys() -> None:
    with pytest.raises(http.client.LineTooLong):
        parse_headers(io.BytesIO(b"A: " + b"x" * 70000 + b"\r\n\r\n"))
    with pytest.raises(http.client.HTTPException, match="more than 100 headers"):
        parse_headers(io.BytesIO(b"A: b\r\n" * 101 + b"\r\n"))


def test_consumer_queues_use_the_fast_paths() -> None:
    settings = Settings(
        mns_endpoint="http://127.0.0.1:1", mns_access_key_id="id", mns_access_key_secret="secret-value"
    )
    queue = open_queue(settings, "events")
    assert isinstance(queue.mns_client, ConsumerClient)
    assert issubclass(queue.mns_client.http.conn.response_class, http.client.HTTPResponse)
    assert queue.mns_client.http.conn.response_class is not http.client.HTTPResponse


class _FakeSocket:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def makefile(self, mode: str) -> io.BytesIO:
        return io.BytesIO(self._data)


_RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nx-mns-request-id: abc\r\n\r\nhello",
    b"HTTP/1.1 204 No Content\r\nDate: x\r\n\r\n",
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\nA: b\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nx",
    b"HTTP/1.1 404 Not Found\r\nX-Folded: a\r\n  b\r\nContent-Length: 0\r\n\r\n",
]


@pytest.mark.parametrize("raw", _RESPONSES, ids=range(len(_RESPONSES)))
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_fast_response_reads_what_the_standard_response_reads(raw: bytes, method: str) -> None:
    """Our copy of ``HTTPResponse.begin`` against the running Python's own, on the same bytes."""

    def state(response_class: type[http.client.HTTPResponse]) -> dict[str, Any]:
        response = response_class(_FakeSocket(raw), method=method)  # type: ignore[arg-type]
        response.begin()
        return {
            "status": response.status,
            "reason": response.reason,
            "version": response.version,
            "headers": response.getheaders(),
            "chunked": response.chunked,
            "length": response.length,
            "will_close": response.will_close,
            "body": response.read(),
        }

    client = ConsumerClient("http://127.0.0.1:1")
    client.use_fast_responses()
    fast_class = client.http.conn.response_class
    assert state(fast_class) == state(http.client.HTTPResponse)
