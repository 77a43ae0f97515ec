"""Authenticated but invalid: a request that passed its provider's check and then failed to parse or validate.

It is kept in the dead-letter store (raw body, source, reason, request id) and answered 200, so the
provider stops retrying a body that can never succeed while nothing valid is lost. A provider's retries of
the same body are one entry: the store's ``once_key`` is a hash of the source and the body. The store is the
synchronous one the CLI reads (``ims-worker dlq list``); this rare path runs it in a thread.
"""

from __future__ import annotations

import asyncio
import hashlib

import structlog

from worker.delivery.deadletter import DeadLetterStore, DeadLetterStoreFull
from worker.errors import BrokerUnavailable
from worker.events import Transport
from worker.redisconn import REDIS_ERRORS
from worker.settings import Settings
from worker.shim.errors import ShimError

log = structlog.get_logger(__name__)

REASON = "invalid_request"
FULL_RETRY_AFTER_SECONDS = "60"


class DeadLettersFull(ShimError):
    """The provider's share of the dead-letter store is full: the body is not kept, the sender may retry
    (503). One captured signature pair let an attacker add distinct 64 KB entries for the whole window."""

    status = 503
    code = "dead_letters_full"


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
        except DeadLetterStoreFull as exc:
            log.warning("shim.dead_letter_refused", provider=source, request_id=request_id, detail=str(exc))
            raise DeadLettersFull(
                f"the dead-letter store holds as many {source} requests as it may; this one was not kept, "
                "retry later",
                headers={"Retry-After": FULL_RETRY_AFTER_SECONDS},
            ) from exc
        except REDIS_ERRORS as exc:
            raise BrokerUnavailable(f"the dead-letter store is unreachable: {type(exc).__name__}") from exc

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
