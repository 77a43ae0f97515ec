"""The exception tree of the service. A leaf module: it imports nothing from the rest of ``worker``."""

from __future__ import annotations


class WorkerError(Exception):
    """Base class for every error this package raises on purpose."""


class InvalidPayload(WorkerError):
    """Raised when a payload is not JSON, not an object, or lacks the fields that identify its event type.

    The message says exactly what is wrong; it never contains secrets (payloads carry none).
    """


class ConfigurationError(WorkerError):
    """Raised when settings or the environment make it impossible to start (bad queue, key or plugin)."""


class BrokerUnavailable(WorkerError):
    """Raised when the broker or Redis cannot be reached; callers must not acknowledge upstream."""


class Retry(WorkerError):
    """Raised by a handler to ask for another attempt later, with backoff."""

    def __init__(self, reason: str = "handler asked for a retry", *, countdown: float | None = None) -> None:
        super().__init__(reason)
        self.countdown = countdown


class Permanent(WorkerError):
    """Raised by a handler when retrying cannot help; the event goes straight to the dead-letter store."""


class TooManyEvents(InvalidPayload):
    """Raised when one payload would fan out into more events (or more copied bytes) than allowed.

    The shim answers 413 and enqueues nothing; the MNS consumer dead-letters the message with this reason.
    """
