"""``ProviderSpec``: everything the service knows about one event source, in one typed declaration.

The shim's routes and authentication, the OpenAPI document, the demo's samples and keys, the redaction list,
the per-source defaults (dedupe TTL, Celery queue), the identifier and the business keys operators search
by are all read from these declarations; nothing else lists the providers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, SecretStr

from worker.events.envelope import EventData
from worker.events.identify import Identifier
from worker.events.ids import IdRules
from worker.settings import Settings

# How a provider authenticates its calls (the verifiers are in ``worker.shim.auth``):
# - "md5-url":      md5hex("{callback URL}|{timestamp header}|{key}") in the signature header (IMS).
# - "md5-host":     md5hex("{callback host}|{timestamp header}|{key}") in the signature header (Live, RTC).
# - "tencent-body": body fields ``t`` (expiry) and ``sign`` = md5hex("{key}{t}") (Tencent CSS).
# - "token":        query parameter ``token`` equal to a configured token (production studio).
AuthKind = Literal["md5-url", "md5-host", "tencent-body", "token"]


@dataclass(frozen=True)
class AuthSpec:
    """How requests to a provider's endpoint are authenticated, and which setting holds its keys.

    ``key_setting`` names a ``Settings`` field (a comma-separated list, several keys during a rotation);
    ``None`` means the keys are under the provider's name in ``IMS_WORKER_PROVIDER_KEYS`` (for providers
    added by a plugin module, which cannot add fields to ``Settings``).
    """

    kind: AuthKind
    key_setting: str | None = None
    timestamp_header: str | None = None
    signature_header: str | None = None
    description: str = ""


@dataclass(frozen=True)
class BusinessKey:
    """A value an operator searches by (``MediaId``), with the payload paths it may be found at, in order."""

    name: str
    paths: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class ProviderSpec:
    """One event source. ``name`` is the source (``Event.source``, metric label, queue-route key)."""

    name: str
    title: str
    path: str  # the shim's endpoint
    auth: AuthSpec
    identify: Identifier
    occurred_at: Callable[[dict[str, Any]], datetime | None]
    ids: IdRules
    types: dict[str, tuple[type[EventData], str]]  # full type name -> (typed model, one-line description)
    business_keys: tuple[BusinessKey, ...]
    dedupe_ttl_seconds: int
    queue: str
    samples: str | None = None  # folder under worker/samples/
    aliases: tuple[str, ...] = ()  # other spellings accepted by the CLI (``live-record``)
    detect: Callable[[dict[str, Any]], bool] | None = None  # does a payload look like this source's?
    detect_order: int = 100  # lower is tried first by ``detect_source``
    detect_fallback: Callable[[dict[str, Any]], bool] | None = None  # tried after every ``detect``
    accept_form: bool = False  # RTC's older subscriptions post form bodies
    answer: Literal["json", "tencent"] = "json"  # Tencent expects {"code":0}
    # The request body's schema for OpenAPI when it is not one of the event models (RTC's envelope).
    request_model: type[BaseModel] | None = None

    def keys(self, settings: Settings) -> list[SecretStr]:
        """The configured keys (or tokens) of this provider, as configured (not trimmed or checked)."""
        if self.auth.key_setting is not None:
            value: list[SecretStr] = getattr(settings, self.auth.key_setting)
            return list(value)
        return list(settings.provider_keys.get(self.name, []))

    @property
    def key_variable(self) -> str:
        """The environment variable an operator sets to arm this endpoint."""
        if self.auth.key_setting is not None:
            return f"IMS_WORKER_{self.auth.key_setting.upper()}"
        return f"IMS_WORKER_PROVIDER_KEYS[{self.name}]"
