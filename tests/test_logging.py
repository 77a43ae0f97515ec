"""worker.logging: rendering, levels, stdlib routing, per-event context and secret redaction."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from worker.logging import (
    REDACTED,
    Redactor,
    configure_logging,
    is_secret_key,
    secret_values,
)
from worker.providers import normalize
from worker.settings import Settings

SECRETS = {
    "mns_access_key_secret": "mns-secret-AKS-123456",
    "mns_security_token": "sts-token-ABCDEF",
    "ims_callback_key": "ims-key-current,ims-key-previous",
    "live_auth_key": "live-auth-key-1",
    "rtc_app_key": "rtc-app-key-1",
    "tencent_callback_key": "tencent-key-1",
    "caster_token": "caster-token-1",
}
ALL_SECRET_VALUES = [
    "mns-secret-AKS-123456", "sts-token-ABCDEF", "ims-key-current", "ims-key-previous", "live-auth-key-1",
    "rtc-app-key-1", "tencent-key-1", "caster-token-1",
]  # fmt: skip


def make_settings(**overrides: Any) -> Settings:
    return Settings(_env_file=None, **{**SECRETS, "log_format": "json", **overrides})


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def configured(**overrides: Any) -> io.StringIO:
    stream = io.StringIO()
    configure_logging(make_settings(**overrides), stream=stream)
    return stream


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


# --- redaction ---------------------------------------------------------------------------------------------


def test_every_configured_secret_is_known() -> None:
    assert sorted(secret_values(make_settings())) == sorted(ALL_SECRET_VALUES)
    assert secret_values(Settings(_env_file=None)) == []


@pytest.mark.parametrize(
    "key",
    ["X-Ice-Signature", "ali-live-signature", "Ali-Rtc-Signature", "Authorization", "access_key_secret",
     "mns_access_key_secret", "sign", "token", "caster_token", "password", "SecurityToken", "client_secret"],
)  # fmt: skip
def test_secret_like_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key", ["event", "MediaId", "SessionId", "signal", "design", "EventType", "assign_to"]
)
def test_ordinary_keys(key: str) -> None:
    assert not is_secret_key(key)


def test_redactor_removes_secrets_at_any_depth() -> None:
    redact = Redactor([*ALL_SECRET_VALUES, "ab"])
    event: dict[str, Any] = {
        "event": "calling https://x/?key=ims-key-previous&y=1",
        "headers": {"X-Ice-Signature": "0f" * 16, "Content-Type": "application/json"},
        "header_list": [("ali-rtc-signature", "abc"), ("host", "h")],
        "payload": {"t": 1, "sign": "deadbeef", "nested": [{"Authorization": "Bearer z"}, "tencent-key-1!"]},
        "raw": b"body with caster-token-1 inside",
        "error": ValueError("bad mns-secret-AKS-123456"),
        "count": 3,
        "short": "ab stays: too short to search for",
    }
    out = redact(None, "info", event)
    assert out["event"] == f"calling https://x/?key={REDACTED}&y=1"
    assert out["headers"] == {"X-Ice-Signature": REDACTED, "Content-Type": "application/json"}
    assert out["header_list"] == [("ali-rtc-signature", REDACTED), ("host", "h")]
    assert out["payload"] == {
        "t": 1,
        "sign": REDACTED,
        "nested": [{"Authorization": REDACTED}, f"{REDACTED}!"],
    }
    assert out["raw"] == f"body with {REDACTED} inside"
    assert out["error"] == f"ValueError('bad {REDACTED}')"
    assert (out["count"], out["short"]) == (3, "ab stays: too short to search for")
    assert event["headers"] == {
        "X-Ice-Signature": "0f" * 16,
        "Content-Type": "application/json",
    }  # the caller's objects are not modified


def test_redaction_seen_through_capture_logs() -> None:
    with capture_logs(processors=[Redactor(ALL_SECRET_VALUES)]) as logs:
        structlog.get_logger("t").info(
            "auth", authorization="Basic xyz", url="https://h/?token=rtc-app-key-1"
        )
    assert logs == [{"event": "auth", "authorization": REDACTED, "url": f"https://h/?token={REDACTED}",
                     "log_level": "info"}]  # fmt: skip


# --- context -----------------------------------------------------------------------------------------------


# --- rendered output ---------------------------------------------------------------------------------------


def test_json_lines_with_iso_utc_timestamps_and_context() -> None:
    stream = configured()
    [event] = normalize("live.record", {"domain": "d", "app": "a", "stream": "s", "event": "record_started"})
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(event_id=event.id, event_type=event.type, source=event.source)
    structlog.get_logger("worker.test").warning("recording %s", "started", stream_name="s")
    [line] = lines(stream)
    assert line["event"] == "recording started"
    assert (line["level"], line["logger"], line["stream_name"]) == ("warning", "worker.test", "s")
    assert (line["event_id"], line["event_type"], line["source"]) == (event.id, event.type, "live.record")
    stamp = datetime.fromisoformat(line["timestamp"])
    assert stamp.tzinfo is not None and stamp.utcoffset() == UTC.utcoffset(None)
    assert line["timestamp"].endswith("Z")


def test_a_log_calls_own_fields_never_replace_the_bound_context() -> None:
    """A handler logging ``event_type=314`` or ``source="s3"`` keeps the event's own on the line; its values
    stay, as ``logged_<name>``. Stdlib loggers' ``extra`` the same."""
    stream = configured()
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(
        event_id="tencent:1", event_type="tencent.relay.TaskExit", source="tencent"
    )
    structlog.get_logger("myteam.handlers").info("sent", event_type=314, source="s3", event_id="tencent:1")
    logging.getLogger("myteam.lib").info("plain", extra={"event_type": "other"})
    first, second = lines(stream)
    assert (first["event_type"], first["source"], first["event_id"]) == (
        "tencent.relay.TaskExit",
        "tencent",
        "tencent:1",
    )
    assert (first["logged_event_type"], first["logged_source"]) == (314, "s3")
    assert "logged_event_id" not in first  # the same value: nothing to keep
    assert (second["event_type"], second["logged_event_type"]) == ("tencent.relay.TaskExit", "other")


def test_stdlib_and_celery_loggers_share_the_pipeline_and_the_redaction() -> None:
    celery_logger = logging.getLogger("celery.worker")
    celery_logger.addHandler(logging.StreamHandler(io.StringIO()))  # as if Celery had installed its own
    celery_logger.propagate = False
    stream = configured()
    structlog.contextvars.bind_contextvars(event_id="ims:abc")
    celery_logger.info("connected to %s", "redis://:mns-secret-AKS-123456@host:6379/0")
    logging.getLogger("kombu").warning("plain stdlib", extra={"x_ice_signature": "ffff"})
    try:
        int("caster-token-1")
    except ValueError:
        structlog.get_logger("worker.test").exception("task.handler_failed", token="t-1", ok="fine")
    output = stream.getvalue()
    for secret in [*ALL_SECRET_VALUES, "ffff", "t-1"]:
        assert secret not in output
    first, second, third = lines(stream)
    assert first["event"] == f"connected to redis://{REDACTED}@host:6379/0"
    assert (first["logger"], first["level"], first["event_id"]) == ("celery.worker", "info", "ims:abc")
    assert (second["logger"], second["x_ice_signature"]) == ("kombu", REDACTED)
    assert third["token"] == REDACTED and third["ok"] == "fine"
    assert "ValueError: invalid literal for int() with base 10: '[REDACTED]'" in third["exception"]


def test_level_comes_from_settings() -> None:
    stream = configured(log_level="warning")
    structlog.get_logger("worker.test").info("hidden")
    logging.getLogger("celery").info("hidden too")
    structlog.get_logger("worker.test").error("shown")
    assert [line["event"] for line in lines(stream)] == ["shown"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_console_renderer_on_a_terminal_and_json_elsewhere() -> None:
    terminal = Terminal()
    configure_logging(make_settings(log_format=None), stream=terminal)
    structlog.get_logger("worker.test").info("hello", signature="abc")
    text = terminal.getvalue()
    assert "hello" in text and "abc" not in text and REDACTED in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    pipe = io.StringIO()
    configure_logging(make_settings(log_format=None), stream=pipe)
    structlog.get_logger("worker.test").info("hello")
    assert lines(pipe)[0]["event"] == "hello"


def test_explicit_format_wins_over_the_terminal_check() -> None:
    terminal = Terminal()
    configure_logging(make_settings(log_format="json"), stream=terminal)
    structlog.get_logger("worker.test").info("hello")
    assert lines(terminal)[0]["event"] == "hello"
    pipe = io.StringIO()
    configure_logging(make_settings(log_format="console"), stream=pipe)
    structlog.get_logger("worker.test").info("hello")
    assert "hello" in pipe.getvalue() and not pipe.getvalue().startswith("{")


def test_defaults_to_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    configure_logging(make_settings())
    structlog.get_logger("worker.test").info("to stderr", password="hunter22")
    out, err = capfd.readouterr()
    assert out == ""
    assert json.loads(err.splitlines()[-1])["password"] == REDACTED
