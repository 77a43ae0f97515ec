"""Where the MNS signing credentials come from: explicit settings, or the Alibaba Cloud default chain.

An explicit AccessKey pair (``IMS_WORKER_MNS_ACCESS_KEY_ID``/``_SECRET``, optionally with a static
``IMS_WORKER_MNS_SECURITY_TOKEN``) wins. Without it, ``alibabacloud-credentials``' default chain is asked:
environment, RRSA/OIDC, CLI profile, profile file, ECS RAM role, credentials URI. The SDK calls
``get_credentials()`` before signing every request, so a refreshed STS token is used from the next request on.

The chain caches temporary credentials and refreshes them itself. What this module adds:
- one provider per process (one refresh for all pollers, not one per thread);
- a failed refresh does not stop a consumer whose credentials are still valid: the last good ones are used
  until their expiry while the refresh is retried with backoff, and the incident is logged once;
- ``invalidate``: after MNS refused a token (expired early, revoked), the next request fetches new ones;
- the library's own logger is silenced: it prints refresh failures with the credentials server's raw answer,
  which can hold a secret. Our log lines carry the reason, redacted, and never a secret.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

import structlog
from mns.auth import Credentials as SdkCredentials

from worker.backoff import backoff_delay
from worker.errors import WorkerError
from worker.redact import redact_text
from worker.settings import Settings

log = structlog.get_logger(__name__)

# alibabacloud_credentials logs to "credentials" through a StreamHandler of its own, bypassing redaction, and
# quotes whole answers of credential services (secrets included). `disabled` alone does not hold: any
# dictConfig(disable_existing_loggers=False) (uvicorn's, Celery's) sets it back to False on every existing
# logger. A filter that drops every record survives that.
_LIBRARY_LOG = logging.getLogger("credentials")
_LIBRARY_LOG.handlers.clear()
_LIBRARY_LOG.propagate = False
_LIBRARY_LOG.disabled = True
_LIBRARY_LOG.addFilter(lambda record: False)

REFRESH_RETRY_BASE_SECONDS = 1.0
REFRESH_RETRY_CAP_SECONDS = 60.0
_DETAIL_LIMIT = 600
_CHAIN_PREFIX = "unable to load credentials from any of the providers in the chain: "

# The chain's provider names (``default/<name>``) in the words an operator knows them by.
SOURCE_NAMES = {
    "env": "environment (ALIBABA_CLOUD_ACCESS_KEY_ID/ALIBABA_CLOUD_ACCESS_KEY_SECRET)",
    "static_ak": "environment (ALIBABA_CLOUD_ACCESS_KEY_ID/ALIBABA_CLOUD_ACCESS_KEY_SECRET)",
    "static_sts": "environment (ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET/ALIBABA_CLOUD_SECURITY_TOKEN)",
    "oidc_role_arn": "RRSA/OIDC (ALIBABA_CLOUD_OIDC_TOKEN_FILE, ALIBABA_CLOUD_ROLE_ARN)",
    "cli_profile": "Alibaba Cloud CLI profile (~/.aliyun/config.json)",
    "profile": "credentials file (~/.alibabacloud/credentials.ini or ALIBABA_CLOUD_CREDENTIALS_FILE)",
    "ecs_ram_role": "ECS RAM role (instance metadata service)",
    "credential_uri": "credentials URI (ALIBABA_CLOUD_CREDENTIALS_URI)",
}
EXPLICIT_SOURCE = "settings (IMS_WORKER_MNS_ACCESS_KEY_ID/IMS_WORKER_MNS_ACCESS_KEY_SECRET)"
STATIC_TOKEN_SOURCE = (
    "settings (IMS_WORKER_MNS_ACCESS_KEY_ID/_SECRET with a static IMS_WORKER_MNS_SECURITY_TOKEN)"  # noqa: S105
)


class CredentialsUnavailable(WorkerError):
    """No credentials could be obtained (the message is safe to log: it holds no secret)."""


@dataclass(frozen=True)
class Snapshot:
    key_id: str
    secret: str
    token: str
    expiration: float | None  # epoch seconds; None: does not expire (a long-lived AccessKey)
    source: str

    @property
    def temporary(self) -> bool:
        return bool(self.token)


def describe_source(provider_name: str) -> str:
    """``default/credential_uri`` -> "credentials URI (ALIBABA_CLOUD_CREDENTIALS_URI)"."""
    parts = [SOURCE_NAMES.get(part) for part in provider_name.split("/")]
    named = [part for part in parts if part]
    return named[0] if named else provider_name


def safe_reason(exc: BaseException) -> str:
    """A refresh error as one line with no secret: the library quotes the server's whole answer after
    ``result:``, which may hold credentials; that part is dropped and the rest redacted."""
    text = str(exc).split(" result:", 1)[0].split(", result:", 1)[0]
    text = " ".join(text.split()).replace(_CHAIN_PREFIX, "tried ")
    return redact_text(text)[:_DETAIL_LIMIT] or type(exc).__name__


class CredentialSource:
    """The SDK's ``CredentialsProvider`` interface (``get_credentials()``) plus what the consumer needs."""

    refreshable = False
    static_token = False

    def get_credentials(self) -> SdkCredentials:
        snapshot = self.current()
        return SdkCredentials(snapshot.key_id, snapshot.secret, snapshot.token)

    def current(self) -> Snapshot:
        raise NotImplementedError

    def invalidate(self, refused_key_id: str) -> None:
        """MNS refused ``refused_key_id``'s token: make the next request fetch fresh credentials."""

    @property
    def name(self) -> str:
        """Where the credentials come from (fetches them if none were fetched yet)."""
        raise NotImplementedError

    @property
    def label(self) -> str:
        """Where the credentials came from, without fetching anything (for error messages)."""
        raise NotImplementedError


class ExplicitCredentials(CredentialSource):
    """The AccessKey pair (and optional static STS token) from settings: nothing to refresh."""

    def __init__(self, key_id: str, secret: str, token: str) -> None:
        source = STATIC_TOKEN_SOURCE if token else EXPLICIT_SOURCE
        self._snapshot = Snapshot(key_id, secret, token, None, source)
        self.static_token = bool(token)  # nothing can refresh it: its expiry needs the operator

    def current(self) -> Snapshot:
        return self._snapshot

    @property
    def name(self) -> str:
        return self._snapshot.source

    @property
    def label(self) -> str:
        return self._snapshot.source


class ChainCredentials(CredentialSource):
    """The default chain, shared by every thread of the process."""

    refreshable = True

    def __init__(self, provider: Any = None, *, clock: Any = time.time) -> None:
        self._provider = provider if provider is not None else _default_chain()
        self._clock = clock
        self._lock = threading.Lock()
        self._last: Snapshot | None = None
        self._last_raw: Any = None
        self._loaded_once = False
        self._failures = 0
        self._retry_at = 0.0
        self._rng = random.Random()  # noqa: S311 - jitter only

    @property
    def name(self) -> str:
        return self.current().source

    @property
    def label(self) -> str:
        last = self._last
        return last.source if last is not None else "the default credentials chain"

    def current(self) -> Snapshot:
        with self._lock:
            now = self._clock()
            last = self._last
            if self._failures and last is not None and now < self._retry_at and _valid(last, now):
                return last  # refreshing failed recently: keep the still-valid credentials until the retry
            try:
                fresh = self._provider.get_credentials()
            except Exception as exc:  # noqa: BLE001 - every provider failure is one kind of incident here
                return self._refresh_failed(exc, now)
            if fresh is self._last_raw and last is not None and not self._failures:
                return last  # the chain's cache answered with the same object: nothing to convert
            self._last_raw = fresh
            snapshot = _snapshot(fresh)
            if self._failures:
                log.info("mns.credentials.recovered", source=snapshot.source, failed_attempts=self._failures)
                self._failures = 0
            if last is None or last.key_id != snapshot.key_id or last.token != snapshot.token:
                log.info(
                    "mns.credentials.loaded",
                    source=snapshot.source,
                    temporary=snapshot.temporary,
                    expires_in_s=None if snapshot.expiration is None else round(snapshot.expiration - now),
                )
            self._last = snapshot
            self._loaded_once = True
            return snapshot

    def _refresh_failed(self, exc: BaseException, now: float) -> Snapshot:
        self._failures += 1
        delay = backoff_delay(
            self._failures, base=REFRESH_RETRY_BASE_SECONDS, cap=REFRESH_RETRY_CAP_SECONDS, rng=self._rng
        )
        self._retry_at = now + delay
        last = self._last
        usable = last is not None and _valid(last, now)
        # Once per incident ("recovered" closes it). Before any credentials were loaded the error below is the
        # whole story (the start-up check reports it), so it is not told twice.
        if self._failures == 1 and self._loaded_once:
            log.warning(
                "mns.credentials.refresh_failed",
                reason=safe_reason(exc),
                using_cached_until=None if not usable or last is None else _iso(last.expiration),
                retry_in_s=round(delay, 1),
            )
        if usable and last is not None:
            return last
        raise CredentialsUnavailable(
            "no MNS credentials: IMS_WORKER_MNS_ACCESS_KEY_ID is not set and the Alibaba Cloud default "
            f"credentials chain found none ({safe_reason(exc)})"
        ) from None

    def invalidate(self, refused_key_id: str) -> None:
        with self._lock:
            if self._last is None or self._last.key_id != refused_key_id:
                return  # another thread already moved on to newer credentials
            self._last = None
            self._last_raw = None
            self._failures = 0
            _expire_cached(self._provider)


def _valid(snapshot: Snapshot, now: float) -> bool:
    return snapshot.expiration is None or now < snapshot.expiration


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _snapshot(credentials: Any) -> Snapshot:
    expiration = getattr(credentials, "get_expiration", lambda: None)()
    return Snapshot(
        key_id=credentials.get_access_key_id() or "",
        secret=credentials.get_access_key_secret() or "",
        token=credentials.get_security_token() or "",  # the SDK sends the header for anything but ""
        expiration=float(expiration) if expiration else None,
        source=describe_source(credentials.get_provider_name() or "default"),
    )


def _default_chain() -> Any:
    from alibabacloud_credentials.provider.default import DefaultCredentialsProvider  # noqa: PLC0415

    return DefaultCredentialsProvider()


def _expire_cached(provider: Any) -> None:
    """Drop the chain's cached temporary credentials so the next call fetches new ones.

    The library offers no public way to do it: its providers keep them in ``_credentials_cache`` (a
    ``RefreshCachedSupplier``) and the chain remembers the provider that answered last. If that layout
    changes, the cache expires on its own schedule instead (the retry then waits for it).
    """
    last = getattr(provider, "_DefaultCredentialsProvider__last_used_provider", None) or provider
    cache = getattr(last, "_credentials_cache", None)
    if cache is not None and hasattr(cache, "_cached_value"):
        cache._cached_value = None


_SHARED: dict[tuple[str, str, str], CredentialSource] = {}
_SHARED_LOCK = threading.Lock()


def credentials_for(settings: Settings) -> CredentialSource:
    """The process's credential source for these settings (explicit pair, else the default chain)."""
    if settings.mns_access_key_id and settings.mns_access_key_secret is not None:
        secret = settings.mns_access_key_secret.get_secret_value()
        token = settings.mns_security_token.get_secret_value() if settings.mns_security_token else ""
        key = (settings.mns_access_key_id, secret, token)
    else:
        key = ("", "", "")  # the default chain
    with _SHARED_LOCK:
        source = _SHARED.get(key)
        if source is None:
            source = ExplicitCredentials(*key) if key[0] else ChainCredentials()
            _SHARED[key] = source
        return source
