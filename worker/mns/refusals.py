"""What an MNS refusal means for a poller: retry with fresh credentials, back off, or stop the consumer."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import structlog
from mns.mns_exception import MNSServerException

from worker.mns.credentials import CredentialSource
from worker.mns.explain import TOKEN_CODES

log = structlog.get_logger(__name__)
T = TypeVar("T")

# Server answers that no retry can fix: the operator must change the settings. A refused token is one too
# when it came from settings; from the default chain it is refreshed and retried instead.
FATAL_CODES = frozenset(
    {"QueueNotExist", "SignatureDoesNotMatch", "AccessDenied", "InvalidAccessKeyId", "InvalidQueueName"}
)


def is_fatal(exc: MNSServerException, *, refreshable: bool) -> bool:
    if exc.type in TOKEN_CODES:
        return not refreshable  # from settings nothing can fix it; from the chain the next fetch may
    return exc.type in FATAL_CODES


def with_fresh_credentials(credentials: CredentialSource, operation: str, call: Callable[[], T]) -> T:
    """``call()``; if MNS refused the credentials and they can be refreshed, once more with fresh ones.

    An STS token can be refused before the provider thought it stale (revoked, clock drift, a server that
    expires it early): that is a rotation, not a failure of the poller, so the caller does not count it. The
    refused request changed nothing on the server, so repeating it can neither lose nor duplicate a message.
    """
    try:
        return call()
    except MNSServerException as exc:
        if exc.type not in TOKEN_CODES or not credentials.refreshable:
            raise
        log.info("mns.credentials.refused", code=exc.type, operation=operation, retry="fresh credentials")
        credentials.invalidate(getattr(exc, "key_id", ""))
        return call()
