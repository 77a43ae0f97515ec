"""The one redaction of the worker: credentials inside any text (log lines, error messages, URLs shown to
operators), replaced by one placeholder, ``[REDACTED]``.

What counts as a credential: the userinfo of a URL (``redis://user:password@host`` ->
``redis://[REDACTED]@host``; the user name goes too, and a userinfo without a password, which may be a token,
as well), and URL query parameters, form fields and JSON members whose name says "secret".

Provider URLs carry their credentials in the query string: OSS pre-signed URLs (``OSSAccessKeyId``,
``Signature``, ``security-token``, ``x-oss-credential``/``x-oss-signature``), Alibaba CDN URL signing
(``auth_key``), Tencent's ``txSecret``, the caster's ``?token=``, S3's ``X-Amz-Signature``. Handlers log
such URLs as they are, so the log pipeline passes every string through ``redact_text``: the value of any
``name=value`` or ``"name": "value"`` whose name is a credential's is replaced, wherever the text is.
"""

from __future__ import annotations

import re
from functools import lru_cache

REDACTED = "[REDACTED]"

# A name holds a credential when (lower-cased, "-" read as "_") it is one of these...
CREDENTIAL_NAMES = frozenset(
    {"sign", "auth_key", "authkey", "app_key", "appkey", "callback_key", "api_key", "apikey",
     "accesskeyid", "access_key_id", "ossaccesskeyid", "cookie", "set_cookie", "sig", "x_amz_credential"}
)  # fmt: skip
# ...or contains one of these.
CREDENTIAL_PARTS = ("secret", "signature", "token", "password", "passwd", "authorization", "credential")

# name=value in a query string or form (the value stops at a backslash too: inside JSON-escaped text, a URL's
# value ends where an escaped quote begins, and the escape must survive the redaction)...
_PAIR = re.compile(r"(?<![A-Za-z0-9_.-])([A-Za-z][A-Za-z0-9_.-]{0,63})(=)([^&#\s\"'<>,;\\]*)")
# ...and percent-encoded inside another URL's parameter: %3Fname%3Dvalue%26...
_ENCODED_PAIR = re.compile(
    r"(?<=%3[Ff]|%26)([A-Za-z][A-Za-z0-9_.-]{0,63})(%3[Dd])((?:(?!%26)[^&#\s\"'<>,;])*)"
)
# scheme://userinfo@ (all of it: user, password, or a token; up to the last "@" before the path, so that an
# unescaped "@" inside a password is covered too).
_USERINFO = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#\s]+@")
# "name": "value" inside JSON text (a raw body, a repr).
_JSON_MEMBER = re.compile(r"(\"([A-Za-z][A-Za-z0-9_.-]{0,63})\"\s*:\s*\")((?:[^\"\\]|\\.)*)(\")")


@lru_cache(maxsize=4096)
def is_credential_name(name: str) -> bool:
    """Whether a field or parameter called ``name`` carries a credential (case-insensitive)."""
    key = name.lower().replace("-", "_")
    return key in CREDENTIAL_NAMES or any(part in key for part in CREDENTIAL_PARTS)


def _pair(match: re.Match[str]) -> str:
    name, sep, value = match.group(1), match.group(2), match.group(3)
    if value and value != REDACTED and is_credential_name(name):
        return f"{name}{sep}{REDACTED}"
    return match.group(0)


def _member(match: re.Match[str]) -> str:
    if match.group(3) and is_credential_name(match.group(2)):
        return f"{match.group(1)}{REDACTED}{match.group(4)}"
    return match.group(0)


def redact_text(text: str) -> str:
    """``text`` with every credential-named parameter's or member's value, and every URL's userinfo
    (``redis://user:password@host``), replaced by ``[REDACTED]``."""
    if "@" in text:
        text = _USERINFO.sub(rf"\1{REDACTED}@", text)
    if "%3" in text:
        text = _ENCODED_PAIR.sub(_pair, text)
    if "=" in text:
        text = _PAIR.sub(_pair, text)
    if '":' in text or '" :' in text:
        text = _JSON_MEMBER.sub(_member, text)
    return text


# The members of a provider's own authentication inside a body: Tencent CSS signs with ``sign`` (over ``t``
# only: one captured pair authenticates any body until ``t``). Removed from what the dead-letter store keeps.
PROVIDER_SIGNATURE_MEMBERS = frozenset({"sign"})


def _provider_member(match: re.Match[str]) -> str:
    if match.group(3) and match.group(2) in PROVIDER_SIGNATURE_MEMBERS:
        return f"{match.group(1)}{REDACTED}{match.group(4)}"
    return match.group(0)


def strip_signatures(text: str) -> str:
    """``text`` (a JSON body, or an event's JSON) with the providers' body signatures replaced by
    ``[REDACTED]``; everything else byte for byte."""
    if '"sign"' not in text:
        return text
    return _JSON_MEMBER.sub(_provider_member, text)


def redact_url(url: str) -> str:
    """A URL safe to log or print (``sentinel://a;sentinel://b`` lists too): the userinfo and credential query
    parameters replaced."""
    return redact_text(url)
