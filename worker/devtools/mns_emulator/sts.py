"""Temporary (STS) credentials for the emulator: issued, checked with every request, rotated on a schedule.

A temporary credential is an AccessKey id, secret, security token and expiry, as STS hands them out. The SDK
sends the token in the ``security-token`` header (not signed); the emulator refuses a request whose token is
missing or not the one issued with that AccessKey id (403 ``InvalidSecurityToken``) or past its expiry (403
``SecurityTokenExpired``). MNS's error-code table names no code for these; they are OSS's for the same cases.

``credentials_uri()`` is the answer of an ``ALIBABA_CLOUD_CREDENTIALS_URI`` server (served by the admin API at
``GET /_emulator/sts/credentials``): the current credential, replaced by a new one every ``rotate_seconds``.
Each credential is accepted until ``grace_seconds`` after its successor was issued.

The ``Expiration`` it reports is the real expiry plus ``advertised_extra_seconds``: alibabacloud-credentials
refreshes a URI credential 15 minutes before its reported expiration, so the default 900 s makes the library
refresh exactly when the emulator stops accepting it. A larger value makes the library keep a credential the
emulator already refuses, so the consumer's "refused, fetch fresh credentials, retry" path runs.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from worker.devtools.mns_emulator.errors import MnsError

STS_KEY_PREFIX = "STS."
LIBRARY_STALE_SECONDS = 900  # alibabacloud-credentials' URI provider: refresh 15 min before Expiration
_KEEP = 4096  # expired credentials remembered (to answer "expired" rather than "unknown key")


@dataclass(frozen=True)
class TemporaryCredential:
    key_id: str
    secret: str
    token: str
    issued_at: float
    expires_at: float

    def as_uri_answer(self, advertised_extra_seconds: float) -> dict[str, Any]:
        expiration = time.gmtime(self.expires_at + advertised_extra_seconds)
        return {
            "Code": "Success",
            "AccessKeyId": self.key_id,
            "AccessKeySecret": self.secret,
            "SecurityToken": self.token,
            "Expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ", expiration),
        }


class StsIssuer:
    def __init__(
        self,
        *,
        rotate_seconds: float = 3600.0,
        grace_seconds: float = 2.0,
        advertised_extra_seconds: float = LIBRARY_STALE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rotate_seconds = rotate_seconds
        self.grace_seconds = grace_seconds
        self.advertised_extra_seconds = advertised_extra_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._issued: OrderedDict[str, TemporaryCredential] = OrderedDict()
        self._current: TemporaryCredential | None = None
        self.rotations = 0  # credentials issued through the URI so far
        self.outage = False  # the credentials URI answers 503 (a credentials service down)

    def configure(self, **changes: float) -> dict[str, float]:
        with self._lock:
            for name in ("rotate_seconds", "grace_seconds", "advertised_extra_seconds"):
                if name in changes:
                    value = float(changes[name])
                    if value < 0 or (name == "rotate_seconds" and value <= 0):
                        raise ValueError(f"{name} must be positive, got {value}")
                    setattr(self, name, value)
            self._current = None  # the next URI call issues a credential with the new schedule
            return self.settings()

    def settings(self) -> dict[str, float]:
        return {
            "rotate_seconds": self.rotate_seconds,
            "grace_seconds": self.grace_seconds,
            "advertised_extra_seconds": self.advertised_extra_seconds,
        }

    def issue(self, lifetime_seconds: float) -> TemporaryCredential:
        """A new credential accepted for ``lifetime_seconds`` from now."""
        with self._lock:
            return self._issue(lifetime_seconds)

    def _issue(self, lifetime_seconds: float) -> TemporaryCredential:
        now = self._clock()
        credential = TemporaryCredential(
            key_id=STS_KEY_PREFIX + secrets.token_hex(8),
            secret=secrets.token_urlsafe(24),
            token=secrets.token_urlsafe(48),
            issued_at=now,
            expires_at=now + lifetime_seconds,
        )
        self._issued[credential.key_id] = credential
        while len(self._issued) > _KEEP:
            self._issued.popitem(last=False)
        return credential

    def credentials_uri(self) -> dict[str, Any]:
        """The current credential in the credentials-URI format, rotated when its time has come."""
        if self.outage:
            raise MnsError("ServiceUnavailable", "The credentials service is unavailable (emulated outage).")
        with self._lock:
            current = self._current
            if current is None or self._clock() >= current.issued_at + self.rotate_seconds:
                current = self._current = self._issue(self.rotate_seconds + self.grace_seconds)
                self.rotations += 1
            return current.as_uri_answer(self.advertised_extra_seconds)

    def lookup(self, key_id: str) -> TemporaryCredential | None:
        with self._lock:
            return self._issued.get(key_id)

    def expire_all(self) -> int:
        """Make every issued credential expired now (as if STS had revoked them); returns how many."""
        with self._lock:
            now = self._clock()
            for key_id, credential in list(self._issued.items()):
                if credential.expires_at > now:
                    self._issued[key_id] = TemporaryCredential(
                        credential.key_id, credential.secret, credential.token, credential.issued_at, now
                    )
            self._current = None
            return len(self._issued)

    def now(self) -> float:
        return self._clock()
