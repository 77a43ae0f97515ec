"""The webhook endpoints, derived from the provider definitions and bound to the settings once.

Everything that depends only on the settings (keys as bytes, the public callback URL and host) is
computed here at start, so a request costs a dict lookup and one MD5 per key.

Which URL/host is signed: when ``shim_public_url`` is set (the usual case behind a proxy or load
balancer) it is the only one trusted. Without it the request's own scheme and ``Host`` header are used;
``X-Forwarded-*`` headers are never read for this, because any client can send them. Only live endpoints
(``worker.shim.arming``) get a route.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from worker.providers import ProviderSpec, active, providers
from worker.settings import Settings
from worker.shim import auth
from worker.shim.arming import Arming
from worker.shim.errors import BadRequest

Headers = Mapping[str, str]
# Each check returns True when the request was verified, False when it was accepted unsigned (opt-in), or
# raises AuthFailure.
HeaderAuth = Callable[[Headers, str, str, str], bool]  # (headers, scheme, path, query string)
BodyAuth = Callable[[dict[str, Any]], bool]

# Source name (also the metric label) -> route path, for the built-in providers (fixed by the API).
ENDPOINTS: dict[str, str] = {spec.name: spec.path for spec in providers()}


@dataclass(frozen=True)
class Provider:
    spec: ProviderSpec
    header_auth: HeaderAuth | None  # runs before the body is read
    body_auth: BodyAuth | None  # Tencent: the signature lives in the body

    @property
    def source(self) -> str:
        return self.spec.name

    @property
    def path(self) -> str:
        return self.spec.path

    @property
    def accept_form(self) -> bool:
        return self.spec.accept_form

    @property
    def tencent_answer(self) -> bool:
        return self.spec.answer == "tencent"


def secret_keys(settings: Settings, spec: ProviderSpec) -> list[bytes]:
    """The configured secrets of ``spec`` as bytes (several during a key rotation), trimmed."""
    return [key.get_secret_value().strip().encode("utf-8") for key in spec.keys(settings)]


class _RequestURL:
    """Resolves the callback URL and host a provider signed: the configured public URL, else the request's.

    The IMS console's callback URL may carry a query string; IMS then calls that URL and signs all of it, so
    the request's query string (as received) is part of the signed URL.
    """

    def __init__(self, public_url: str | None) -> None:
        self.public_url = public_url.rstrip("/") if public_url else None
        self.public_host = auth.callback_host(public_url) if public_url else None

    def url(self, headers: Headers, scheme: str, path: str, query: str = "") -> str:
        if self.public_url is not None:
            base = auth.callback_url(self.public_url, path)
        else:
            base = f"{scheme}://{headers.get('host', '')}{path}"
        return f"{base}?{query}" if query else base

    def host(self, headers: Headers) -> str:
        if self.public_host is not None:
            return self.public_host
        return auth.callback_host(headers.get("host", ""))


_MAX_QUERY_FIELDS = 50


def _token_of(query: str) -> str | None:
    try:
        tokens = parse_qs(query, max_num_fields=_MAX_QUERY_FIELDS).get("token") if query else None
    except ValueError as exc:  # more fields than that: an answer, not a 500 with a traceback
        raise BadRequest(
            f"the query string has more than {_MAX_QUERY_FIELDS} fields", code="too_many_query_fields"
        ) from exc
    return tokens[-1] if tokens else None


def _checks(
    spec: ProviderSpec, keys: list[bytes], unsigned: bool, where: _RequestURL, window: int
) -> tuple[HeaderAuth | None, BodyAuth | None]:
    """The check of ``spec``'s scheme. With ``unsigned`` (the operator's opt-in) a request that carries no
    signature at all is let through as unsigned; one that carries a signature is still verified."""
    scheme = spec.auth
    if scheme.kind == "tencent-body":

        def body(payload: dict[str, Any]) -> bool:
            if unsigned and (not keys or ("sign" not in payload and "t" not in payload)):
                return False
            auth.verify_tencent(
                payload.get("t"), payload.get("sign"), keys=keys, now=time.time(), window=window
            )
            return True

        return None, body
    if scheme.kind == "token":

        def token(headers: Headers, http_scheme: str, path: str, query: str) -> bool:
            given = _token_of(query)
            if unsigned and (not keys or given is None):
                return False
            auth.verify_token(given, tokens=keys)
            return True

        return token, None
    stamp_header = (scheme.timestamp_header or "").lower()
    signature_header = (scheme.signature_header or "").lower()
    by_url = scheme.kind == "md5-url"

    def signed(headers: Headers, http_scheme: str, path: str, query: str) -> bool:
        stamp, signature = headers.get(stamp_header), headers.get(signature_header)
        if unsigned and (not keys or (stamp is None and signature is None)):
            return False
        prefix = where.url(headers, http_scheme, path, query) if by_url else where.host(headers)
        auth.verify_signed(scheme, stamp, signature, prefix=prefix, keys=keys, now=time.time(), window=window)
        return True

    return signed, None


def build_providers(settings: Settings, arming: Arming) -> dict[str, Provider]:
    """Route path -> Provider for the live endpoints only, every check bound to the settings."""
    window = settings.signature_window_seconds
    where = _RequestURL(settings.shim_public_url)
    built: dict[str, Provider] = {}
    for spec in active(settings):
        if not arming.live(spec.name):
            continue  # not armed: not served (404)
        keys = secret_keys(settings, spec)
        header_auth, body_auth = _checks(spec, keys, spec.name in arming.unsigned, where, window)
        built[spec.path] = Provider(spec, header_auth, body_auth)
    return built
