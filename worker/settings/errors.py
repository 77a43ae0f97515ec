"""Settings problems as one message an operator can act on: every problem, by its ``IMS_WORKER_`` name.

pydantic names the Python field (``mns_wait_seconds``) and stops at the first JSON value it cannot decode;
an operator sets environment variables. ``SettingsInvalid`` lists all problems at once, each with the
variable, the constraint and the offending value (secret values masked, credentials cut out of URLs).
A leaf like ``settings``: it imports nothing from the rest of ``worker`` but the error tree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

from worker.errors import ConfigurationError
from worker.redact import REDACTED, redact_text
from worker.settings.placeholders import is_placeholder

ENV_PREFIX = "IMS_WORKER_"
MASK = REDACTED  # the one placeholder (worker.redact)
MAX_VALUE_CHARS = 80

# Field names that hold secrets even when their type does not say so (e.g. a URL with a password is redacted
# separately, below, by worker.redact).
_SECRET_NAME_PARTS = ("secret", "token", "password", "key", "auth")


class SettingsInvalid(ConfigurationError):
    """Raised by ``load_settings`` when any setting is invalid or missing; ``problems`` lists them all."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        lines = [f"{count} invalid setting{'s' if count != 1 else ''}:"]
        lines += [f"  {problem}" for problem in self.problems]
        super().__init__("\n".join(lines))


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def is_secret_field(model: type[BaseModel], field: str) -> bool:
    info = model.model_fields.get(field)
    if info is not None and "Secret" in repr(info.annotation):
        return True
    return any(part in field for part in _SECRET_NAME_PARTS) and not field.endswith("_port")


def shown_value(model: type[BaseModel], field: str | None, value: Any) -> str:
    """The offending value as it may be printed: masked when secret, URL credentials cut, length bounded."""
    if field is not None and is_secret_field(model, field):
        return MASK
    text = value if isinstance(value, str) else repr(value)
    text = redact_text(text)
    if len(text) > MAX_VALUE_CHARS:
        text = text[: MAX_VALUE_CHARS - 1] + "…"
    return repr(text) if isinstance(value, str) else text


def describe_errors(model: type[BaseModel], error: ValidationError) -> list[str]:
    """One line per problem: ``IMS_WORKER_X: <constraint> (got <value>)``."""
    problems: list[str] = []
    for item in error.errors(include_url=False):
        loc = item.get("loc", ())
        field = str(loc[0]) if loc else None
        message = str(item.get("msg", "invalid"))
        message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if field is None or field not in model.model_fields:
            # A cross-field rule: its message names the variables itself, one problem per line.
            problems += [line.strip() for line in message.splitlines() if line.strip()]
            continue
        where = env_name(field) + "".join(f"[{part!r}]" for part in loc[1:])
        if item.get("type") == "missing":
            problems.append(f"{where}: required, not set")
            continue
        problems.append(f"{where}: {message} (got {shown_value(model, field, item.get('input'))})")
    return problems


def missing(settings: BaseModel, fields: Iterable[str], why: str) -> SettingsInvalid | None:
    """A ``SettingsInvalid`` naming every one of ``fields`` that is unset or empty, or None."""
    unset = [f for f in fields if not getattr(settings, f)]
    # A secret left as shipped (change-me...) is as missing as an unset one: refuse it the same way.
    placeholders = [
        f
        for f in fields
        if isinstance(value := getattr(settings, f), SecretStr) and is_placeholder(value.get_secret_value())
    ]
    if not unset and not placeholders:
        return None
    return SettingsInvalid(
        [f"{env_name(f)}: required {why}, not set" for f in unset]
        + [f"{env_name(f)}: required {why}, but it is a placeholder, not a real secret" for f in placeholders]
    )
