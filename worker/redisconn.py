"""Redis clients for dedupe markers, handler ledgers and dead letters.

``store_client(settings)`` is the way in: it applies the production settings to the store URL. ``rediss://``
gets the TLS files (``redis_tls_*``), ``redis://user:password@`` is an ACL login, and
``sentinel://host:26379;sentinel://host2:26379/0`` asks those Sentinels for the current master of
``redis_sentinel_master`` (and again after a failover). ``broker_options(settings)`` hands the same
settings to kombu, so the Celery broker and the store connect the same way.

Clients fail fast: a short connect timeout and a single immediate retry (a pooled connection may be stale
after a Redis restart). Callers turn ``REDIS_ERRORS`` into ``BrokerUnavailable`` or a task retry; waiting
longer here would only make the shim miss the provider's 3-second budget.
"""

from __future__ import annotations

import ssl
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from worker.errors import ConfigurationError
from worker.redact import redact_url
from worker.settings import Settings

CONNECT_TIMEOUT_SECONDS = 2.0
SOCKET_TIMEOUT_SECONDS = 10.0

# Errors that mean "Redis cannot take this right now"; anything else is a bug and should surface as such.
REDIS_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.ReadOnlyError,
    # "OOM command not allowed": Redis is at maxmemory (noeviction), a refusal like the others, not a bug.
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ClusterDownError,
    OSError,
)

_COMMON: dict[str, Any] = {
    "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
    "socket_timeout": SOCKET_TIMEOUT_SECONDS,
    "socket_keepalive": True,
    "health_check_interval": 30,
}


def tls_options(settings: Settings) -> dict[str, Any]:
    """redis-py's SSL connection arguments (kombu passes ``broker_use_ssl`` on to redis-py unchanged)."""
    return {
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_ca_certs": settings.redis_tls_ca_file,
        "ssl_certfile": settings.redis_tls_cert_file,
        "ssl_keyfile": settings.redis_tls_key_file,
        "ssl_check_hostname": settings.redis_tls_check_hostname,
    }


def broker_options(settings: Settings) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(extra kombu transport options, ``broker_use_ssl``) for a Redis broker URL."""
    transport: dict[str, Any] = {}
    if settings.broker_url.startswith("sentinel://"):
        transport["master_name"] = settings.redis_sentinel_master
        if settings.redis_sentinel_password is not None:
            transport["sentinel_kwargs"] = {"password": settings.redis_sentinel_password.get_secret_value()}
    use_ssl = tls_options(settings) if settings.broker_url.startswith("rediss://") else None
    return transport, use_ssl


def _sentinel_args(url: str, settings: Settings | None) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """``sentinel://[user:pw@]host:port[/db];sentinel://host2:port`` -> Sentinel addresses, master kwargs.

    The first URL carries the master's credentials and database, as kombu reads it."""
    if settings is None or not settings.redis_sentinel_master:
        raise ConfigurationError(
            f"{redact_url(url)}: a sentinel:// URL needs IMS_WORKER_REDIS_SENTINEL_MASTER"
        )
    nodes = [urlsplit(part.strip()) for part in url.split(";") if part.strip()]
    first = nodes[0]
    master: dict[str, Any] = {"db": int(first.path.strip("/") or 0)}
    if first.username:
        master["username"] = unquote(first.username)
    if first.password:
        master["password"] = unquote(first.password)
    addresses = [(n.hostname or "127.0.0.1", n.port or 26379) for n in nodes]
    return addresses, master


def _sentinel_kwargs(settings: Settings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "socket_timeout": CONNECT_TIMEOUT_SECONDS,
    }
    if settings.redis_sentinel_password is not None:
        kwargs["password"] = settings.redis_sentinel_password.get_secret_value()
    return kwargs


def sync_client(url: str, settings: Settings | None = None) -> redis.Redis:
    """A client for ``url``; without ``settings`` only plain ``redis://`` and ``unix://`` URLs work fully."""
    retry = Retry(NoBackoff(), 1)
    if url.startswith("sentinel://"):
        addresses, master = _sentinel_args(url, settings)
        assert settings is not None and settings.redis_sentinel_master is not None
        sentinels: Any = redis.sentinel.Sentinel
        sentinel = sentinels(addresses, sentinel_kwargs=_sentinel_kwargs(settings))
        client = sentinel.master_for(settings.redis_sentinel_master, retry=retry, **_COMMON, **master)
        return cast(redis.Redis, client)
    tls = tls_options(settings) if settings is not None and url.startswith("rediss://") else {}
    return redis.Redis.from_url(url, retry=retry, **_COMMON, **tls)


def async_client(url: str, settings: Settings | None = None) -> redis.asyncio.Redis:
    retry = AsyncRetry(NoBackoff(), 1)
    if url.startswith("sentinel://"):
        addresses, master = _sentinel_args(url, settings)
        assert settings is not None and settings.redis_sentinel_master is not None
        sentinels: Any = redis.asyncio.sentinel.Sentinel
        sentinel = sentinels(addresses, sentinel_kwargs=_sentinel_kwargs(settings))
        client = sentinel.master_for(settings.redis_sentinel_master, retry=retry, **_COMMON, **master)
        return cast(redis.asyncio.Redis, client)
    tls = tls_options(settings) if settings is not None and url.startswith("rediss://") else {}
    return redis.asyncio.Redis.from_url(url, retry=retry, **_COMMON, **tls)


def store_client(settings: Settings) -> redis.Redis:
    """The client for dedupe markers, ledgers, dead letters and the outbox."""
    return sync_client(settings.effective_redis_url, settings)


def async_store_client(settings: Settings) -> redis.asyncio.Redis:
    return async_client(settings.effective_redis_url, settings)
