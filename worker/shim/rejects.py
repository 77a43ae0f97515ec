"""Authenticated but invalid: a request that passed its provider's check and then failed to parse or validate.

It is kept in the dead-letter store (raw body, source, reason, request id) and answered 200, so the
provider stops retrying a body that can never succeed while nothing valid is lost. A provider's retries of
the same body are one entry: the store's ``once_key`` is a hash of the source and the body. The store is the
synchronous one the CLI reads (``ims-worker dlq list``); this rare path runs it in a thread.
"""

from __future__ import annotations

import asyncio
import hashlib

from worker.deadletter import DeadLetterStore
from worker.errors import BrokerUnavailable
from worker.events import Transport
from worker.redisconn import REDIS_ERRORS
from worker.settings import Settings

REASON = "invalid_request"


class RejectStore:
    """Writes dead letters for the shim; the Redis client is made on first use and closed with the app."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._store: DeadLetterStore | None = None

    def _add(self, raw: bytes, source: str, error: str, request_id: str) -> bool:
        if self._store is None:
            self._store = DeadLetterStore.for_settings(self._settings)  # TLS, ACL and Sentinel aware
        once = hashlib.sha256(source.encode() + b"\0" + raw).hexdigest()
        entry = self._store.add(
            raw=raw,
            source=source,
            reason=REASON,
            error=error,
            transport=Transport(kind="http", request_id=request_id),
            once_key=f"http:{once}",
        )
        return entry is not None

    async def add(self, raw: bytes, source: str, error: str, request_id: str) -> bool:
        """Keep the request; True if it is new, False if the same body was kept before (a retry)."""
        try:
            return await asyncio.to_thread(self._add, raw, source, error, request_id)
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(f"the dead-letter store is unreachable: {type(exc).__name__}") from exc

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
