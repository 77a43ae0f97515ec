"""structlog set-up: JSON lines or console renderer, ISO UTC timestamps, per-event context, secret redaction.

One pipeline for everything: structlog loggers and stdlib loggers (Celery, kombu, uvicorn...) all end in the
same ``ProcessorFormatter`` on the root logger, so every line is rendered, and redacted, the same way.
Logs go to stderr: stdout stays free for command output (``ims-worker events parse`` prints JSON there).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from worker import redact
from worker.providers import active
from worker.redact import CREDENTIAL_NAMES, CREDENTIAL_PARTS, is_credential_name, redact_text
from worker.settings import Settings

REDACTED = redact.REDACTED

# Field names whose values are secrets, and the redaction of credentials inside text: worker.redact.
SECRET_KEY_PARTS = CREDENTIAL_PARTS
SECRET_KEYS = CREDENTIAL_NAMES

# Shorter configured secrets are not searched for inside other text: they would shred ordinary log lines.
MIN_SECRET_LENGTH = 4

# Third-party loggers that may have been given their own handlers: they must reach ours instead.
ROUTED_LOGGERS = (
    "celery", "celery.app.trace", "celery.task", "celery.worker", "celery.redirected", "kombu", "amqp",
    "flower", "tornado", "uvicorn", "uvicorn.error", "uvicorn.access",
)  # fmt: skip


def is_secret_key(key: str) -> bool:
    """Whether a field named ``key`` holds a secret (``X-Ice-Signature``, ``mns_access_key_secret``...)."""
    return is_credential_name(key)


def secret_values(settings: Settings) -> list[str]:
    """Every configured secret value: credentials, webhook keys (all, during rotation), caster token."""
    values = [settings.mns_access_key_secret, settings.mns_security_token]
    for provider in active(settings):  # every provider's keys, plugin providers included
        values.extend(provider.keys(settings))
    return [value.get_secret_value() for value in values if value is not None and value.get_secret_value()]


class Redactor:
    """A processor that replaces secrets in an event dict: values under secret-like keys, at any depth, and
    any configured secret value wherever it appears inside a string (messages, URLs, tracebacks)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        known = sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, known))) if known else None

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        return {key: self._under(key, value) for key, value in event_dict.items()}

    def _under(self, key: Any, value: Any) -> Any:
        if isinstance(key, str) and is_secret_key(key) and value is not None:
            return REDACTED
        return self._value(value)

    def _value(self, value: Any) -> Any:
        if isinstance(value, bytes | bytearray):
            value = value.decode("utf-8", "replace")
        elif isinstance(value, BaseException):
            value = repr(value)
        if isinstance(value, str):
            value = redact_text(value)  # credentials in URLs, forms, JSON text
            return self._pattern.sub(REDACTED, value) if self._pattern else value
        if isinstance(value, Mapping):
            return {k: self._under(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            # A header list: [("X-Ice-Signature", "..."), ...]
            if len(value) == 2 and isinstance(value[0], str) and is_secret_key(value[0]):
                items = [value[0], REDACTED]
            else:
                items = [self._value(item) for item in value]
            return tuple(items) if isinstance(value, tuple) else items
        return value


_process_name: str | None = None


class _ProcessName:
    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("process_name", self.name)
        return event_dict


def _dumps(value: Any, **_: Any) -> str:
    try:
        return orjson.dumps(value, default=repr, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):  # nesting beyond orjson's limit
        return json.dumps(value, default=repr)


def use_json(settings: Settings, stream: TextIO) -> bool:
    """JSON unless asked for the console renderer, or unset and writing to a terminal."""
    if settings.log_format is not None:
        return settings.log_format == "json"
    isatty = getattr(stream, "isatty", None)
    return not (callable(isatty) and isatty())


def merge_bound_context(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """The bound context (``event_id``, ``event_type``, ``source``, ``task_id``, ``attempt`` in a task;
    ``queue`` and ``poller`` in the consumer) on every line, never replaced by a field of the same name that
    a log call passes: that value is kept as ``logged_<name>``. Every line about an event then names the
    event it is about, whatever a handler logs (structlog's own ``merge_contextvars`` lets the call win)."""
    for key, value in structlog.contextvars.get_contextvars().items():
        if key in event_dict and event_dict[key] != value:
            event_dict[f"logged_{key}"] = event_dict[key]
        event_dict[key] = value
    return event_dict


def configure_logging(
    settings: Settings, *, stream: TextIO | None = None, process_name: str | None = None
) -> None:
    """Route structlog and stdlib logging through one redacting pipeline to ``stream`` (stderr).

    ``process_name`` (``shim``, ``consumer``, ``worker``, ``flower``...) is added to every line of this
    process as ``process_name``, its own and third-party ones alike; a later call without one keeps it
    (Celery's ``setup_logging`` signal configures logging again after the command line did).
    """
    stream = stream if stream is not None else sys.stderr
    level = logging.getLevelName(settings.log_level.upper())
    if not isinstance(level, int):
        level = logging.INFO
    shared: list[Processor] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    global _process_name  # noqa: PLW0603 - a process keeps its name when logging is configured again
    _process_name = process_name if process_name is not None else _process_name
    if _process_name is not None:
        shared.append(_ProcessName(_process_name))
    renderer: Processor = (
        structlog.processors.JSONRenderer(serializer=_dumps)
        if use_json(settings, stream)
        else structlog.dev.ConsoleRenderer(colors=getattr(stream, "isatty", lambda: False)())
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), merge_bound_context],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.StackInfoRenderer(),
            # Tracebacks become text before redaction, so a secret in an exception message is caught too.
            structlog.processors.format_exc_info,
            Redactor(secret_values(settings)),
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)  # library warnings (Celery's SecurityWarning...) become log lines too
    for name in ROUTED_LOGGERS:
        routed = logging.getLogger(name)
        routed.handlers.clear()
        routed.propagate = True
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,  # skip the work for lines below the level
            merge_bound_context,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: configure_logging may run again (Celery's signal, tests) and must take effect.
        cache_logger_on_first_use=False,
    )
