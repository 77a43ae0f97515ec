"""Webhook authentication: one small pure function per provider scheme.

Every function takes the values as received (header strings, body fields) plus the keys, the clock and the
window, and either returns or raises ``AuthFailure`` whose ``code`` says why (the metric label). None of them
reads settings, the environment or the clock: the caller passes ``now``, which keeps them trivially testable.

Keys are ``bytes`` (encoded once at start). Several keys may be given during a rotation; every key is tried
without an early exit so the time taken does not say which one matched. Signatures are compared with
``hmac.compare_digest``. An empty key list refuses everything (``not_armed``): nothing is accepted unsigned
unless the operator opts in per provider, which the shim decides before calling these.

Schemes (the providers' documented ones; docs/webhooks.md, "Webhook endpoints and authentication"); which
provider uses which, and its header names, is data on its definition (``ProviderSpec.auth``):
- IMS:          md5hex("{callback URL}|{X-ICE-TIMESTAMP}|{key}"), URL = public base URL + path, plus "?" and
                the request's query string when it has one (the URL as configured in the IMS console).
- Live record:  md5hex("{callback host}|{ALI-LIVE-TIMESTAMP}|{key}").
- RTC:          md5hex("{callback host}|{Ali-Rtc-Timestamp}|{AppKey}").
- Tencent CSS:  body ``t`` (an expiry, unix seconds) and ``sign`` = md5hex("{key}{t}"). The signature covers
  only ``t``, never the rest of the body: a tampered body with an intact t/sign pair still verifies. That is
  Tencent's design; TLS is what protects the body.
- Caster:       ``?token=`` equal to one of the configured tokens (the provider documents no signature).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from worker.providers.spec import AuthSpec
from worker.shim.errors import AuthFailure

# Timestamps above this are milliseconds, not seconds (10**11 s is the year 5138).
_MILLISECONDS_THRESHOLD = 10**11
_MAX_TIMESTAMP_DIGITS = 16
# Tencent signs callbacks with an expiry ``t`` 10 minutes ahead by default; a ``t`` further ahead than this
# (plus the window) was not issued by Tencent for a callback being delivered now.
TENCENT_MAX_VALIDITY_SECONDS = 600


def md5_hex(data: bytes) -> bytes:
    """Lower-case hex MD5 as bytes, the form every provider here uses for its signature."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest().encode("ascii")


def _as_bytes(value: str) -> bytes:
    # Headers arrive as latin-1 text and query/body values as UTF-8 text; anything goes, nothing raises.
    return value.strip().lower().encode("utf-8", "backslashreplace")


def _matches_any(given: str, expected: Sequence[bytes]) -> bool:
    candidate = _as_bytes(given)
    matched = False
    for digest in expected:  # no early exit: the time does not say which key matched
        matched |= hmac.compare_digest(candidate, digest)
    return matched


def parse_timestamp(raw: str | int, *, now: float, window: int, name: str) -> None:
    """Reject a missing, malformed, stale or future unix timestamp (seconds, or milliseconds if that big)."""
    text = str(raw).strip() if not isinstance(raw, bool) else ""
    if not text.isascii() or not text.isdigit() or len(text) > _MAX_TIMESTAMP_DIGITS:
        raise AuthFailure(f"{name} must be a unix timestamp in seconds", code="malformed")
    seconds = int(text)
    if seconds >= _MILLISECONDS_THRESHOLD:
        seconds //= 1000
    if seconds < now - window:
        raise AuthFailure(f"{name} is older than the {window} s window (stale or replayed)", code="stale")
    if seconds > now + window:
        raise AuthFailure(f"{name} is more than {window} s in the future (check the clocks)", code="future")


def _require_keys(keys: Sequence[bytes]) -> None:
    # Fail closed: an endpoint without keys is not served at all (worker.shim.arming); this is the backstop.
    if not keys:
        raise AuthFailure("no key is configured for this endpoint", code="not_armed")


def _require(value: str | None, name: str) -> str:
    if value is None or not value.strip():
        raise AuthFailure(f"missing {name}", code="missing")
    return value


def verify_signed(
    scheme: AuthSpec,
    timestamp: str | None,
    signature: str | None,
    *,
    prefix: str,
    keys: Sequence[bytes],
    now: float,
    window: int,
) -> None:
    """A header-signed provider (IMS, Live record, RTC): its ``AuthSpec`` names the two headers; ``prefix`` is
    the callback URL ("md5-url") or host ("md5-host")."""
    verify_prefixed_md5(
        timestamp,
        signature,
        prefix=prefix,
        keys=keys,
        now=now,
        window=window,
        timestamp_name=scheme.timestamp_header or "timestamp",
        signature_name=scheme.signature_header or "signature",
    )


def verify_prefixed_md5(
    timestamp: str | None,
    signature: str | None,
    *,
    prefix: str,
    keys: Sequence[bytes],
    now: float,
    window: int,
    timestamp_name: str,
    signature_name: str,
) -> None:
    """The "md5-url" and "md5-host" schemes: signature = md5hex("{prefix}|{timestamp}|{key}")."""
    _require_keys(keys)
    stamp = _require(timestamp, timestamp_name).strip()
    given = _require(signature, signature_name)
    parse_timestamp(stamp, now=now, window=window, name=timestamp_name)
    head = prefix.encode("utf-8", "backslashreplace") + b"|" + stamp.encode("ascii") + b"|"
    if not _matches_any(given, [md5_hex(head + key) for key in keys]):
        raise AuthFailure(f"{signature_name} does not match", code="bad_signature")


def verify_tencent(t: object, sign: object, *, keys: Sequence[bytes], now: float, window: int) -> None:
    """Tencent CSS: body ``sign`` = md5hex("{key}{t}"), ``t`` an expiry in unix seconds.

    Stale means ``t`` has passed: Tencent documents ``t`` as the expiry of the notification's signature
    ("if the time specified by t has elapsed, the notification is considered invalid"), already 10 minutes
    after signing, so no clock window is added to it. Future means ``t`` lies further ahead than Tencent's
    validity (10 min) plus the window. Only ``t`` is signed, not the rest of the body.
    """
    _require_keys(keys)
    if t is None or t == "":
        raise AuthFailure("missing body field t", code="missing")
    if sign is None or sign == "":
        raise AuthFailure("missing body field sign", code="missing")
    if isinstance(t, bool) or not isinstance(t, int | str):
        raise AuthFailure("body field t must be a unix timestamp in seconds", code="malformed")
    if not isinstance(sign, str):
        raise AuthFailure("body field sign must be a string", code="malformed")
    expiry = str(t).strip()
    if not expiry.isascii() or not expiry.isdigit() or len(expiry) > _MAX_TIMESTAMP_DIGITS:
        raise AuthFailure("body field t must be a unix timestamp in seconds", code="malformed")
    if int(expiry) < now:
        raise AuthFailure(
            "body field t (the signature's expiry) has passed (stale or replayed)", code="stale"
        )
    if int(expiry) > now + TENCENT_MAX_VALIDITY_SECONDS + window:
        raise AuthFailure("body field t lies too far in the future (check the clocks)", code="future")
    if not _matches_any(sign, [md5_hex(key + expiry.encode("ascii")) for key in keys]):
        raise AuthFailure("body field sign does not match", code="bad_signature")


def verify_token(token: str | None, *, tokens: Sequence[bytes]) -> None:
    """Production studio (caster): ``?token=`` must equal one of the configured tokens."""
    _require_keys(tokens)
    if token is None or token == "":
        raise AuthFailure("missing query parameter token", code="missing")
    given = token.encode("utf-8", "backslashreplace")
    matched = False
    for expected in tokens:  # no early exit, as for signatures
        matched |= hmac.compare_digest(given, expected)
    if not matched:
        raise AuthFailure("query parameter token does not match", code="bad_token")


def callback_url(base_url: str, path: str) -> str:
    """The URL a provider was told to call: the public base URL (any path prefix kept) plus the route path."""
    return base_url.rstrip("/") + path


def callback_host(url_or_host: str) -> str:
    """The host name a provider signs: no scheme, no port, lower case (``https://Hooks.example.com:8443/x``
    and ``hooks.example.com:8443`` both give ``hooks.example.com``)."""
    text = url_or_host.strip()
    netloc = text.split("://", 1)[1] if "://" in text else text
    netloc = netloc.split("/", 1)[0].rsplit("@", 1)[-1]
    if netloc.startswith("["):  # IPv6 literal: keep the brackets off, like urlsplit().hostname
        return netloc[1:].split("]", 1)[0].lower()
    return netloc.split(":", 1)[0].lower()
