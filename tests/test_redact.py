"""Credentials in URLs, forms and JSON text never reach a log line: worker.redact and the log pipeline."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

import worker.logging
from handlers.tencent import log_tencent_event
from worker.logging import configure_logging
from worker.providers import normalize
from worker.redact import REDACTED, is_credential_name, redact_text, redact_url
from worker.settings import Settings

SECRET = "s3cr3tV4lue"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"https://bucket.oss-cn-shanghai.aliyuncs.com/a.mp4?OSSAccessKeyId=LTAI{SECRET}&Expires=1700000000"
            f"&Signature={SECRET}%3D&security-token={SECRET}",
            f"https://bucket.oss-cn-shanghai.aliyuncs.com/a.mp4?OSSAccessKeyId={REDACTED}&Expires=1700000000"
            f"&Signature={REDACTED}&security-token={REDACTED}",
        ),
        (
            f"rtmp://push.example.com/live/s1?txSecret={SECRET}&txTime=65A1B2C3",
            f"rtmp://push.example.com/live/s1?txSecret={REDACTED}&txTime=65A1B2C3",
        ),
        (
            f"https://cdn.example.com/v.m3u8?auth_key=1700000000-0-0-{SECRET}",
            f"https://cdn.example.com/v.m3u8?auth_key={REDACTED}",
        ),
        (f"/webhooks/live/caster?TOKEN={SECRET}", f"/webhooks/live/caster?TOKEN={REDACTED}"),
        (f"?x-oss-credential=LTAI/20240101/cn/oss&x-oss-signature={SECRET}", None),
        (f"?AccessKeyId={SECRET}&sign={SECRET}&SIGN={SECRET}", None),
        (f"?X-Amz-Signature={SECRET}&X-Amz-Credential={SECRET}&X-Amz-Security-Token={SECRET}", None),
        (f"redis://:{SECRET}@redis:6379/0", f"redis://{REDACTED}@redis:6379/0"),
        (f"amqp://user:{SECRET}@rabbit:5672/ims", f"amqp://{REDACTED}@rabbit:5672/ims"),
        # a userinfo without a password may be a token; an unescaped "@" inside a password is covered
        (f"https://{SECRET}@example.com/path", f"https://{REDACTED}@example.com/path"),
        (f"redis://:p@{SECRET}@redis:6379/0", f"redis://{REDACTED}@redis:6379/0"),
        (
            f"sentinel://:{SECRET}@h1:26379/0;sentinel://u:{SECRET}@h2:26379/0",
            f"sentinel://{REDACTED}@h1:26379/0;sentinel://{REDACTED}@h2:26379/0",
        ),
        (
            f"url=https%3A%2F%2Fh%2Fa%3Ftoken%3D{SECRET}%26b%3D1",
            f"url=https%3A%2F%2Fh%2Fa%3Ftoken%3D{REDACTED}%26b%3D1",
        ),
        (f'{{"t": 1, "sign": "{SECRET}", "Signature" : "{SECRET}"}}', None),
        (f"t=1&sign={SECRET}", f"t=1&sign={REDACTED}"),
    ],
)
def test_credentials_in_text_are_redacted(text: str, expected: str | None) -> None:
    redacted = redact_text(text)
    assert SECRET not in redacted
    if expected is not None:
        assert redacted == expected
    assert redact_url(text) == redacted


@pytest.mark.parametrize(
    "text",
    [
        "https://example.com/a.mp4?Expires=1700000000&txTime=65A1B2C3&stream=s1&design=1",
        "plain message, count=3, user=alice@example.com",
        '{"Signed": true, "MediaId": "abc", "designation": "x"}',
        "https://example.com/path?mail=bob@example.com",
    ],
)
def test_ordinary_text_is_kept(text: str) -> None:
    assert redact_text(text) == text


@pytest.mark.parametrize(
    "name", ["sign", "SIGN", "Signature", "token", "txSecret", "security-token", "OSSAccessKeyId",
             "AccessKeyId", "auth_key", "X-Amz-Credential", "x_oss_signature"],
)  # fmt: skip
def test_credential_names(name: str) -> None:
    assert is_credential_name(name)


@pytest.mark.parametrize("name", ["Expires", "txTime", "design", "assign_to", "MediaId", "url"])
def test_ordinary_names(name: str) -> None:
    assert not is_credential_name(name)


@pytest.fixture
def log_stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    monkeypatch.setattr(worker.logging, "_process_name", None)  # restored after: the name is per process
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging(Settings(_env_file=None, log_format="json"), stream=stream, process_name="worker")
    yield stream
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def test_a_handler_line_with_signed_urls_is_redacted(log_stream: io.StringIO) -> None:
    payload = {
        "appid": 4, "callback_event": "TaskStart", "event_type": 314, "interface": "general_callback",
        "msg": '{"task_start_time":0}', "product_name": "pullpush", "stream_id": "s1", "task_id": "1",
        "to_url": f"rtmp://push.example.com/live/s1?txSecret={SECRET}&txTime=65A1B2C3",
        "source_url": f"https://b.oss-cn-shanghai.aliyuncs.com/a.flv?OSSAccessKeyId=LTAI1&Signature={SECRET}",
    }  # fmt: skip
    (event,) = normalize("tencent", payload)
    log_tencent_event(event)
    logging.getLogger("uvicorn.error").warning("GET /x?token=%s", SECRET)  # a third-party line
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    assert SECRET not in log_stream.getvalue()
    handler_line = next(line for line in lines if line["event"] == "handler.tencent.relay")
    assert handler_line["to_url"] == f"rtmp://push.example.com/live/s1?txSecret={REDACTED}&txTime=65A1B2C3"
    assert {line["process_name"] for line in lines} == {"worker"}
    assert lines[-1]["event"] == f"GET /x?token={REDACTED}"
