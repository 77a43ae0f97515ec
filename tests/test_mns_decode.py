from __future__ import annotations

import base64
import json

from hypothesis import given
from hypothesis import strategies as st

from worker.backoff import backoff_delay
from worker.mns.decode import decode_body

PAYLOAD = {"EventType": "FileUploadComplete", "MessageBody": {"MediaId": "m1"}}


def test_plain_json_is_taken_as_it_is() -> None:
    text = json.dumps(PAYLOAD)
    assert decode_body(text) == text.encode()


def test_base64_of_json_is_decoded() -> None:
    encoded = base64.b64encode(json.dumps(PAYLOAD).encode()).decode()
    assert json.loads(decode_body(encoded)) == PAYLOAD


def test_base64_of_something_else_is_left_for_normalize_to_reject() -> None:
    encoded = base64.b64encode(b"not json at all").decode()
    assert decode_body(encoded) == encoded.encode()


def test_garbage_is_returned_verbatim() -> None:
    assert decode_body("%%% garbage") == b"%%% garbage"


@given(st.text())
def test_decode_never_raises(body: str) -> None:
    assert isinstance(decode_body(body), bytes)


def test_backoff_grows_and_stays_within_the_cap() -> None:
    first = [backoff_delay(1, base=1.0, cap=10.0) for _ in range(50)]
    late = [backoff_delay(20, base=1.0, cap=10.0) for _ in range(50)]
    assert all(0.5 <= d <= 1.0 for d in first)
    assert all(0.5 <= d <= 10.0 for d in late)
    assert max(late) > 2.0
