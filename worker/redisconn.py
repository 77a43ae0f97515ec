"""Redis clients for dedupe markers, handler ledgers and dead letters, and URL redaction for messages.

Clients fail fast: a short connect timeout and a single immediate retry (a pooled connection may be stale
after a Redis restart). Callers turn ``REDIS_ERRORS`` into ``BrokerUnavailable`` or a task retry; waiting
longer here would only make the shim miss the provider's 3-second budget.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

CONNECT_TIMEOUT_SECONDS = 2.0
SOCKET_TIMEOUT_SECONDS = 10.0

# Errors that mean "Redis cannot take this right now"; anything else is a bug and should surface as such.
REDIS_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.ClusterDownError,
    OSError,
)

_CREDENTIALS_IN_URL = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@")


def redact_url(url: str) -> str:
    """``redis://user:secret@host:6379/0`` -> ``redis://***@host:6379/0``; others unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _CREDENTIALS_IN_URL.sub(r"\g<scheme>***@", url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def redact_text(text: str) -> str:
    """Remove credentials from any URL embedded in ``text`` (exception messages, log lines)."""
    return _CREDENTIALS_IN_URL.sub(r"\g<scheme>***@", text)


def sync_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_keepalive=True,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 1),
    )


def async_client(url: str) -> redis.asyncio.Redis:
    return redis.asyncio.Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_keepalive=True,
        health_check_interval=30,
        retry=AsyncRetry(NoBackoff(), 1),
    )
