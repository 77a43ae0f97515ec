"""Signing webhook requests the way each provider does: for tests, the demo and ``ims-worker send --http``.

``sign_request`` returns the headers, query parameters and body to POST to the provider's endpoint
(the provider's ``path``). It uses the same hash and the same callback URL/host rules as the verifier
(``worker.shim.auth``), so a request it signs with a configured key is accepted by a shim with the same
settings. Keys are never logged or returned except as the caster token, which *is* the credential.
"""

from __future__ import annotations

import json
import time
from typing import NamedTuple
from urllib.parse import parse_qsl

from worker.providers import ProviderSpec, get, providers
from worker.settings import Settings
from worker.shim import auth
from worker.shim.auth import TENCENT_MAX_VALIDITY_SECONDS

# Other spellings of the built-in sources (sample folders), so `send` can sign a sample by its folder.
SOURCE_ALIASES: dict[str, str] = {alias: spec.name for spec in providers() for alias in spec.aliases}


class SignedRequest(NamedTuple):
    headers: dict[str, str]
    query: dict[str, str]
    body: bytes


def source_of(provider: str) -> str:
    """``"live-record"``, ``"live/record"`` or ``"live.record"`` -> ``"live.record"``."""
    try:
        return get(provider).name
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None


def _first_key(settings: Settings | None, spec: ProviderSpec) -> str | None:
    if settings is None:
        return None
    keys = spec.keys(settings)
    return str(keys[0].get_secret_value()) if keys else None


def sign_request(
    provider: str,
    body: bytes,
    settings: Settings | None = None,
    *,
    key: str | None = None,
    public_url: str | None = None,
    now: float | None = None,
    content_type: str = "application/json",
    callback_query: str = "",
) -> SignedRequest:
    """Sign ``body`` for ``provider`` with ``key`` (default: the first configured key of that provider).

    ``public_url`` (default ``settings.shim_public_url``) is the base URL the provider calls; IMS signs the
    full callback URL, Live and RTC sign its host. With no key at all the request goes out unsigned
    (accepted only by a shim that names the provider in ``IMS_WORKER_SHIM_ALLOW_UNSIGNED``). Tencent's
    ``t``/``sign`` are written into the JSON body, so the returned body differs from the one given.
    ``callback_query`` is the query string of the callback URL as configured in the provider's console
    (``a=1&b=2``): it is sent, and IMS signs it.
    """
    spec = get(source_of(provider))
    secret = key if key is not None else _first_key(settings, spec)
    moment = time.time() if now is None else now
    stamp = str(int(moment))
    base = public_url or (settings.shim_public_url if settings is not None else None)
    headers = {"Content-Type": content_type}
    query: dict[str, str] = dict(parse_qsl(callback_query, keep_blank_values=True))
    kind = spec.auth.kind
    if kind == "tencent-body":
        return SignedRequest(headers, query, _sign_tencent(body, secret, moment))
    if kind == "token":
        if secret is not None:
            query["token"] = secret
        return SignedRequest(headers, query, body)
    if secret is None:
        return SignedRequest(headers, query, body)
    if base is None:
        raise ValueError(f"{spec.name} signs the callback URL/host: pass public_url or set shim_public_url")
    if kind == "md5-url":
        prefix = auth.callback_url(base, spec.path) + (f"?{callback_query}" if callback_query else "")
    else:
        prefix = auth.callback_host(base)
    digest = auth.md5_hex(f"{prefix}|{stamp}|{secret}".encode()).decode("ascii")
    headers[spec.auth.timestamp_header or "timestamp"] = stamp
    headers[spec.auth.signature_header or "signature"] = digest
    return SignedRequest(headers, query, body)


def _sign_tencent(body: bytes, secret: str | None, now: float) -> bytes:
    if secret is None:
        return body
    try:
        payload = json.loads(body)
    except ValueError:
        return body  # nothing to sign into: sent as is, and the shim answers 400
    if not isinstance(payload, dict):
        return body
    # Tencent's t is an expiry: the signature stays valid for its default 10 minutes from now.
    expiry = int(now) + TENCENT_MAX_VALIDITY_SECONDS
    payload["t"] = expiry
    payload["sign"] = auth.md5_hex(f"{secret}{expiry}".encode()).decode("ascii")
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")
