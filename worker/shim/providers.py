"""The five webhook endpoints: path, source, accepted bodies and authentication, bound to the settings once.

Everything that depends only on the settings (keys as bytes, the public callback URL and host) is
computed here at start, so a request costs a dict lookup and one MD5 per key.

Which URL/host is signed: when ``shim_public_url`` is set (the usual case behind a proxy or load
balancer) it is the only one trusted. Without it the request's own scheme and ``Host`` header are used;
``X-Forwarded-*`` headers are never read, because any client can send them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from worker.settings import Settings
from worker.shim import auth

Headers = Mapping[str, str]
HeaderAuth = Callable[[Headers, str, str, str], None]  # (headers, scheme, path, query string)
BodyAuth = Callable[[dict[str, Any]], None]

# Source name (also the metric label) -> route path. Fixed by CONTRACT.md.
ENDPOINTS: dict[str, str] = {
    "ims": "/webhooks/ims",
    "live.record": "/webhooks/live/record",
    "live.caster": "/webhooks/live/caster",
    "rtc": "/webhooks/rtc",
    "tencent": "/webhooks/tencent/css",
}

# Settings field holding each provider's secrets (for warnings and the signing helper).
KEY_FIELDS: dict[str, str] = {
    "ims": "ims_callback_key",
    "live.record": "live_auth_key",
    "live.caster": "caster_token",
    "rtc": "rtc_app_key",
    "tencent": "tencent_callback_key",
}


@dataclass(frozen=True)
class Provider:
    source: str
    path: str
    accept_form: bool
    auth_enabled: bool
    header_auth: HeaderAuth | None  # runs before the body is read
    body_auth: BodyAuth | None  # Tencent: the signature lives in the body
    tencent_answer: bool  # Tencent expects {"code":0}


def secret_keys(settings: Settings, source: str) -> list[bytes]:
    """The configured secrets of ``source`` as bytes (several during a key rotation)."""
    return [key.get_secret_value().encode("utf-8") for key in getattr(settings, KEY_FIELDS[source])]


class _RequestURL:
    """Resolves the callback URL and host a provider signed: the configured public URL, else the request's."""

    def __init__(self, public_url: str | None) -> None:
        self.public_url = public_url.rstrip("/") if public_url else None
        self.public_host = auth.callback_host(public_url) if public_url else None

    def url(self, headers: Headers, scheme: str, path: str) -> str:
        if self.public_url is not None:
            return auth.callback_url(self.public_url, path)
        return f"{scheme}://{headers.get('host', '')}{path}"

    def host(self, headers: Headers) -> str:
        if self.public_host is not None:
            return self.public_host
        return auth.callback_host(headers.get("host", ""))


def build_providers(settings: Settings) -> dict[str, Provider]:
    """Route path -> Provider, with every check bound to the settings."""
    window = settings.signature_window_seconds
    where = _RequestURL(settings.shim_public_url)
    ims_keys = secret_keys(settings, "ims")
    live_keys = secret_keys(settings, "live.record")
    rtc_keys = secret_keys(settings, "rtc")
    tencent_keys = secret_keys(settings, "tencent")
    caster_tokens = secret_keys(settings, "live.caster")

    def ims(headers: Headers, scheme: str, path: str, query: str) -> None:
        auth.verify_ims(
            headers.get("x-ice-timestamp"),
            headers.get("x-ice-signature"),
            callback_url=where.url(headers, scheme, path),
            keys=ims_keys,
            now=time.time(),
            window=window,
        )

    def live_record(headers: Headers, scheme: str, path: str, query: str) -> None:
        auth.verify_live_record(
            headers.get("ali-live-timestamp"),
            headers.get("ali-live-signature"),
            host=where.host(headers),
            keys=live_keys,
            now=time.time(),
            window=window,
        )

    def rtc(headers: Headers, scheme: str, path: str, query: str) -> None:
        auth.verify_rtc(
            headers.get("ali-rtc-timestamp"),
            headers.get("ali-rtc-signature"),
            host=where.host(headers),
            keys=rtc_keys,
            now=time.time(),
            window=window,
        )

    def caster(headers: Headers, scheme: str, path: str, query: str) -> None:
        tokens = parse_qs(query, max_num_fields=50).get("token") if query else None
        auth.verify_token(tokens[-1] if tokens else None, tokens=caster_tokens)

    def tencent(body: dict[str, Any]) -> None:
        auth.verify_tencent(
            body.get("t"), body.get("sign"), keys=tencent_keys, now=time.time(), window=window
        )

    providers = [
        Provider("ims", ENDPOINTS["ims"], False, bool(ims_keys), ims if ims_keys else None, None, False),
        Provider(
            "live.record",
            ENDPOINTS["live.record"],
            False,
            bool(live_keys),
            live_record if live_keys else None,
            None,
            False,
        ),
        Provider(
            "live.caster",
            ENDPOINTS["live.caster"],
            False,
            bool(caster_tokens),
            caster if caster_tokens else None,
            None,
            False,
        ),
        Provider("rtc", ENDPOINTS["rtc"], True, bool(rtc_keys), rtc if rtc_keys else None, None, False),
        Provider(
            "tencent",
            ENDPOINTS["tencent"],
            False,
            bool(tencent_keys),
            None,
            tencent if tencent_keys else None,
            True,
        ),
    ]
    return {provider.path: provider for provider in providers}
