"""Plain records shared by the emulator's store, operations and Python API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


class QueueAttributes(NamedTuple):
    """Queue settings, with the service's defaults."""

    visibility_timeout: int = 30
    maximum_message_size: int = 65536
    message_retention_period: int = 345600
    delay_seconds: int = 0
    polling_wait_seconds: int = 0
    logging_enabled: bool = False


class NewMessage(NamedTuple):
    body: str
    body_md5: str
    priority: int
    delay_seconds: int


class Delivery(NamedTuple):
    """A received message as answered to the client (times in epoch milliseconds)."""

    message_id: str
    receipt_handle: str
    body_md5: str
    body: str
    enqueue_time: int
    next_visible_time: int
    first_dequeue_time: int
    dequeue_count: int
    priority: int


@dataclass(frozen=True)
class QueueStats:
    """What the SDK cannot show a test: where every message is, and what happened so far."""

    name: str
    active: int
    inactive: int
    delayed: int
    sent: int
    received: int
    deleted: int

    @property
    def total(self) -> int:
        return self.active + self.inactive + self.delayed
