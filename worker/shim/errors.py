"""The answers the shim gives on purpose: one exception type per HTTP error, each with a clear reason.

``ShimError`` carries the status, a short machine-readable ``code`` (also a metric label) and a ``detail`` for
humans. Details never contain secrets, signatures or tokens: they name the header or field that was wrong.
"""

from __future__ import annotations


class ShimError(Exception):
    """Raised to answer a request with a specific HTTP error status and a JSON reason."""

    status = 400
    code = "bad_request"

    def __init__(
        self, detail: str, *, code: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.headers = headers or {}


class BadRequest(ShimError):
    """Raised when the body cannot be parsed or is not a valid event (400)."""


class AuthFailure(ShimError):
    """Raised when a signature, timestamp or token is missing, malformed, stale, in the future or wrong (401).

    ``code`` is the reason label of the auth-failure metric: ``missing``, ``malformed``, ``stale``,
    ``future``,
    ``bad_signature``, ``bad_token``.
    """

    status = 401
    code = "unauthorized"


class Forbidden(ShimError):
    """An unsigned request (to a provider the operator opted in) from outside the allowed networks."""

    status = 403
    code = "forbidden"


class NotFound(ShimError):
    """Raised for a path the shim does not serve (404)."""

    status = 404
    code = "not_found"


class MethodNotAllowed(ShimError):
    """Raised when an endpoint is called with the wrong HTTP method (405)."""

    status = 405
    code = "method_not_allowed"


class RequestTimeout(ShimError):
    """Raised when the client does not finish sending its body in time (408)."""

    status = 408
    code = "request_timeout"


class PayloadTooLarge(ShimError):
    """Raised as soon as the body is known to exceed the configured limit, before reading the rest (413)."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ShimError):
    """Raised when the Content-Type is not one the endpoint accepts (415)."""

    status = 415
    code = "unsupported_media_type"


class ClientDisconnected(Exception):
    """Raised when the client went away while we were reading its body: there is nobody to answer."""
