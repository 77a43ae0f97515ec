"""MNS error codes as the service answers them: an HTTP status plus ``<Error><Code/>...`` in the body."""

from __future__ import annotations

# Codes and statuses from the MNS error-code table. The SDK only looks at the status range (400-600 raises
# MNSServerException) and the Code element, so the status must still match the service for consumers that
# branch on it.
STATUS_BY_CODE: dict[str, int] = {
    "AccessDenied": 403,
    "InvalidAccessKeyId": 403,
    "SignatureDoesNotMatch": 403,
    # Not in MNS's table (it names no STS-token code): OSS's codes for the same refusals.
    "SecurityTokenExpired": 403,
    "InvalidSecurityToken": 403,
    "InternalError": 500,
    "ServiceUnavailable": 503,
    "InvalidAuthorizationHeader": 400,
    "InvalidDateHeader": 400,
    "InvalidArgument": 400,
    "InvalidDegist": 400,  # sic: the service spells it this way
    "InvalidRequestURL": 400,
    "InvalidQueryString": 400,
    "MalformedXML": 400,
    "MissingAuthorizationHeader": 400,
    "MissingDateHeader": 400,
    "MissingVersionHeader": 400,
    "InvalidVersionHeader": 400,
    "MissingReceiptHandle": 400,
    "MissingVisibilityTimeout": 400,
    "ReceiptHandleError": 400,
    "InvalidQueueName": 400,
    "QueueNameLengthError": 400,
    "MessageNotExist": 404,
    "QueueNotExist": 404,
    "QueueAlreadyExist": 409,
    "TimeExpired": 408,
}


class MnsError(Exception):
    """An error answer. ``status`` defaults to the service's status for ``code``."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status if status is not None else STATUS_BY_CODE.get(code, 400)


class BatchError(Exception):
    """A batch operation that partly failed: ``body`` is the per-entry XML the SDK parses, not ``<Error>``."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"batch operation partly failed ({status})")
        self.status = status
        self.body = body
