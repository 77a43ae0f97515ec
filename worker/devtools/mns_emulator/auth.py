"""Request authentication exactly as the SDK signs (``MNSClient.get_signature``).

string to sign = METHOD, Content-MD5, Content-Type, Date (each followed by a newline), then the sorted
``x-mns-*:value`` lines, then the URI with its query; signature = base64(HMAC-SHA1(secret, string to sign));
header ``Authorization: MNS <id>:<signature>``.
The ``security-token`` header (STS) is not part of the signature; for a temporary AccessKey id (one issued
by ``StsIssuer``) it must be the token issued with it, and the credential must not have expired.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping
from email.utils import parsedate_to_datetime
from typing import Protocol

from worker.devtools.mns_emulator.errors import MnsError
from worker.devtools.mns_emulator.sts import StsIssuer

API_VERSION = "2015-06-06"
MAX_CLOCK_SKEW_SECONDS = 15 * 60


class Headers(Protocol):
    """What the server hands over: case-insensitive ``get`` and the raw ``items``."""

    def get(self, name: str, /) -> str | None: ...

    def items(self) -> Iterable[tuple[str, str]]: ...


def content_md5(body: bytes) -> str:
    """The SDK's (non-standard) Content-MD5: base64 of the *hex* digest."""
    return base64.b64encode(hashlib.md5(body).hexdigest().encode()).decode()  # noqa: S324 - protocol-defined


def string_to_sign(method: str, uri: str, headers: Headers) -> str:
    mns_headers = sorted((k.lower(), v) for k, v in headers.items() if k.lower().startswith("x-mns-"))
    canonical = "".join(f"{k}:{v}\n" for k, v in mns_headers)
    md5 = headers.get("Content-MD5") or ""
    ctype = headers.get("Content-Type") or ""
    date = headers.get("Date") or ""
    return f"{method}\n{md5}\n{ctype}\n{date}\n{canonical}{uri}"


def sign(secret: str, text: str) -> str:
    digest = hmac.new(secret.encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class Authenticator:
    """Checks every MNS request against a set of access keys (id -> secret)."""

    def __init__(
        self,
        credentials: Mapping[str, str],
        max_skew_seconds: float = MAX_CLOCK_SKEW_SECONDS,
        *,
        sts: StsIssuer | None = None,
        clock_offset_seconds: float = 0.0,
    ):
        self._credentials = dict(credentials)
        self._max_skew = max_skew_seconds
        self.sts = sts or StsIssuer()
        self.clock_offset_seconds = clock_offset_seconds  # the server's clock, off by this much

    def verify(self, method: str, uri: str, headers: Headers, body: bytes) -> str:
        """Raise the service's error for a bad request; returns the access key id on success."""
        authorization = headers.get("Authorization")
        if not authorization:
            raise MnsError("MissingAuthorizationHeader", "Authorization header is required.")
        scheme, _, credential = authorization.partition(" ")
        key_id, sep, signature = credential.rpartition(":")
        if scheme != "MNS" or not sep or not key_id or not signature:
            raise MnsError("InvalidAuthorizationHeader", "The Authorization header format is invalid.")
        self._check_date(headers.get("Date"))
        version = headers.get("x-mns-version")
        if not version:
            raise MnsError("MissingVersionHeader", "x-mns-version header is required.")
        if version != API_VERSION:
            raise MnsError("InvalidVersionHeader", f"The x-mns-version {version!r} is not {API_VERSION}.")
        secret = self._credentials.get(key_id)
        if secret is None:
            secret = self._temporary_secret(key_id, headers.get("security-token"))
        declared_md5 = headers.get("Content-MD5")
        if declared_md5 and declared_md5 != content_md5(body):
            raise MnsError("InvalidDegist", "The Content-MD5 you specified is invalid.")
        text = string_to_sign(method, uri, headers)
        if not hmac.compare_digest(sign(secret, text), signature):
            raise MnsError(
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. "
                f"Check your key and signing method. String to sign: {text!r}",
            )
        return key_id

    def _temporary_secret(self, key_id: str, token: str | None) -> str:
        credential = self.sts.lookup(key_id)
        if credential is None:
            raise MnsError("InvalidAccessKeyId", "The AccessKey Id you provided is not exist.")
        if not token or not hmac.compare_digest(token, credential.token):
            raise MnsError("InvalidSecurityToken", "The security token you provided is invalid.")
        if self.sts.now() >= credential.expires_at:
            raise MnsError("SecurityTokenExpired", "The security token you provided has expired.")
        return credential.secret

    def _check_date(self, date: str | None) -> None:
        if not date:
            raise MnsError("MissingDateHeader", "Date header is required.")
        try:
            sent = parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            raise MnsError("InvalidDateHeader", f"The Date header format is invalid: {date!r}.") from None
        if abs(time.time() + self.clock_offset_seconds - sent) > self._max_skew:
            raise MnsError(
                "TimeExpired",
                f"The http request you sent is expired: Date {date!r} is more than "
                f"{int(self._max_skew)} seconds away from the server's clock.",
            )
