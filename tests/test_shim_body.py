"""Size-limited body reading and JSON/form parsing: every refusal says what was wrong."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

import pytest

from worker.shim.body import body_kind, parse_form, parse_json_object, read_body
from worker.shim.errors import (
    BadRequest,
    ClientDisconnected,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
)
from worker.shim.types import Message, Receive

LIMIT = 1024


def chunks(parts: Iterable[bytes], *, disconnect: bool = False) -> tuple[Receive, list[int]]:
    """An ASGI receive() that hands out ``parts`` and counts how many were read."""
    queue: list[Message] = [{"type": "http.request", "body": part, "more_body": True} for part in parts]
    if queue:
        queue[-1]["more_body"] = False
    if disconnect:
        queue.append({"type": "http.disconnect"})
    read = [0]

    async def receive() -> Message:
        read[0] += 1
        return queue.pop(0)

    return receive, read


def read(receive: Receive, declared: str | None = None, timeout: float = 5.0) -> bytes:
    return asyncio.run(read_body(receive, limit=LIMIT, declared_length=declared, timeout=timeout))


class TestReadBody:
    def test_single_and_multiple_chunks(self) -> None:
        assert read(chunks([b"abc"])[0]) == b"abc"
        assert read(chunks([b"a", b"b", b""])[0]) == b"ab"

    def test_declared_length_over_the_limit_is_refused_before_reading(self) -> None:
        receive, count = chunks([b"x"])
        with pytest.raises(PayloadTooLarge, match="1025 bytes exceeds the limit of 1024"):
            read(receive, declared=str(LIMIT + 1))
        assert count[0] == 0

    def test_chunked_body_is_cut_off_as_soon_as_it_passes_the_limit(self) -> None:
        receive, count = chunks([b"x" * 600, b"x" * 600, b"x" * 600, b"x" * 600])
        with pytest.raises(PayloadTooLarge) as caught:
            read(receive)
        assert count[0] == 2 and caught.value.status == 413
        with pytest.raises(PayloadTooLarge):
            read(chunks([b"x" * (LIMIT + 1)])[0])

    def test_bad_content_length_is_a_400(self) -> None:
        with pytest.raises(BadRequest, match="Content-Length"):
            read(chunks([b"x"])[0], declared="ten")

    def test_client_disconnect(self) -> None:
        with pytest.raises(ClientDisconnected):
            read(chunks([], disconnect=True)[0])
        receive, _ = chunks([b"a", b"b"])

        async def receive_then_leave() -> Message:
            message = await receive()
            return {"type": "http.disconnect"} if not message["more_body"] else message

        with pytest.raises(ClientDisconnected):
            read(receive_then_leave)

    def test_slow_client_times_out(self) -> None:
        async def never() -> Message:
            await asyncio.sleep(10)
            raise AssertionError("unreachable")

        with pytest.raises(RequestTimeout, match=r"within 0\.05 s") as caught:
            read(never, timeout=0.05)
        assert caught.value.status == 408


class TestContentType:
    @pytest.mark.parametrize(
        "given",
        [None, "", "application/json", "Application/JSON; charset=utf-8", "application/cloudevents+json"],
    )
    def test_json_accepted(self, given: str | None) -> None:
        assert body_kind(given, accept_form=False) == "json"

    def test_form_only_where_allowed(self) -> None:
        form = "application/x-www-form-urlencoded; charset=UTF-8"
        assert body_kind(form, accept_form=True) == "form"
        with pytest.raises(UnsupportedMediaType, match=r"send application/json$") as caught:
            body_kind(form, accept_form=False)
        assert caught.value.status == 415

    @pytest.mark.parametrize("given", ["text/plain", "multipart/form-data; boundary=x", "application/xml"])
    def test_others_refused_naming_what_is_accepted(self, given: str) -> None:
        with pytest.raises(UnsupportedMediaType, match="application/x-www-form-urlencoded"):
            body_kind(given, accept_form=True)


class TestJson:
    def test_object(self) -> None:
        assert parse_json_object(b' {"a": [1, 2]} ') == {"a": [1, 2]}

    @pytest.mark.parametrize(
        ("body", "reason"),
        [
            (b"", "empty"),
            (b"  \n", "empty"),
            (b'{"a": 1', "not valid JSON.*line 1"),
            (b'{"a": 1,\n "b": }', "not valid JSON.*line 2"),
            (b"[1, 2]", "must be a JSON object, got array"),
            (b'"text"', "got string"),
            (b"null", "got null"),
            (b"\xff\xfe", "not valid JSON"),
            (b"NaN", "not valid JSON"),
        ],
    )
    def test_refusals_say_what_and_where(self, body: bytes, reason: str) -> None:
        with pytest.raises(BadRequest, match=reason) as caught:
            parse_json_object(body)
        assert caught.value.code == "invalid_json"


MESSAGE: dict[str, Any] = {
    "MsgId": "m1",
    "Contents": [{"Event": "ChannelEvent", "ChannelEvent": {"EventTag": "Open"}}],
}


class TestForm:
    def test_one_field_carrying_the_json_message(self) -> None:
        body = urlencode({"Message": json.dumps(MESSAGE)}).encode()
        assert parse_form(body) == MESSAGE

    def test_flat_fields_with_json_values_decoded(self) -> None:
        body = urlencode({"MsgId": "m1", "MsgTimestamp": "123", "Contents": json.dumps(MESSAGE["Contents"])})
        assert parse_form(body.encode()) == {
            "MsgId": "m1",
            "MsgTimestamp": "123",
            "Contents": MESSAGE["Contents"],
        }

    @pytest.mark.parametrize(
        ("body", "reason"),
        [
            (b"", "empty"),
            (b"a=1&a=2", "'a' is given more than once"),
            (b"Contents=%5B1%2C", "form field 'Contents' is not valid JSON"),
            (b"Message=%7Bnope", "form field 'Message' is not valid JSON"),
            (b"\xff=1", "not valid UTF-8"),
            (b"novalue&&", "malformed"),
        ],
    )
    def test_refusals(self, body: bytes, reason: str) -> None:
        with pytest.raises(BadRequest, match=reason):
            parse_form(body)
