"""All queues of one emulated account, and the validation of queue names and attributes."""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any

from worker.devtools.mns_emulator.errors import MnsError
from worker.devtools.mns_emulator.ids import IdSource
from worker.devtools.mns_emulator.models import QueueAttributes, QueueStats
from worker.devtools.mns_emulator.queue_state import EmulatedQueue

_QUEUE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]*\Z")
MAX_QUEUE_NAME = 256

# Element name -> (attribute, low, high), the ranges the service documents.
_ATTRIBUTE_RANGES: dict[str, tuple[str, int, int]] = {
    "VisibilityTimeout": ("visibility_timeout", 1, 43200),
    "MaximumMessageSize": ("maximum_message_size", 1024, 65536),
    "MessageRetentionPeriod": ("message_retention_period", 60, 604800),
    "DelaySeconds": ("delay_seconds", 0, 604800),
    "PollingWaitSeconds": ("polling_wait_seconds", 0, 30),
}


def parse_int(element: str, text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise MnsError("InvalidArgument", f"The value of {element} should be an integer: {text!r}.") from None
    if not low <= value <= high:
        raise MnsError("InvalidArgument", f"The value of {element} should between {low} and {high}.")
    return value


def attributes_from(fields: Mapping[str, str], base: QueueAttributes | None = None) -> QueueAttributes:
    """Queue attributes from request elements; missing ones keep ``base`` (or the service defaults)."""
    changes: dict[str, Any] = {}
    for element, (name, low, high) in _ATTRIBUTE_RANGES.items():
        if element in fields:
            changes[name] = parse_int(element, fields[element], low, high)
    if "LoggingEnabled" in fields:
        flag = fields["LoggingEnabled"].strip().lower()
        if flag not in ("true", "false"):
            raise MnsError("InvalidArgument", "The value of LoggingEnabled should be True or False.")
        changes["logging_enabled"] = flag == "true"
    return (base or QueueAttributes())._replace(**changes)


def check_queue_name(name: str) -> None:
    if not 1 <= len(name) <= MAX_QUEUE_NAME:
        raise MnsError(
            "QueueNameLengthError", f"The length of queue name should between 1 and {MAX_QUEUE_NAME}."
        )
    if not _QUEUE_NAME.match(name):
        raise MnsError(
            "InvalidQueueName",
            f"The queue name you provided is not valid: {name!r} (a letter, then letters, digits and '-').",
        )


class Broker:
    """Queue registry. Per-queue state is locked per queue, so queues never contend with each other."""

    def __init__(self, ids: IdSource) -> None:
        self.ids = ids
        self.interrupted = threading.Event()  # set while stopping: pending long polls return at once
        self._lock = threading.Lock()
        self._queues: dict[str, EmulatedQueue] = {}

    def create_queue(self, name: str, attributes: QueueAttributes | None = None) -> bool:
        """True if created, False if it already existed with the same attributes (409 otherwise)."""
        check_queue_name(name)
        attributes = attributes or QueueAttributes()
        with self._lock:
            existing = self._queues.get(name)
            if existing is not None:
                if existing.attributes != attributes:
                    raise MnsError(
                        "QueueAlreadyExist", f"The queue you want to create is already exist: {name}."
                    )
                return False
            self._queues[name] = EmulatedQueue(name, attributes, self.ids, self.interrupted)
            return True

    def get(self, name: str) -> EmulatedQueue:
        queue = self._queues.get(name)
        if queue is None:
            raise MnsError("QueueNotExist", f"The queue name you provided is not exist: {name}.")
        return queue

    def delete_queue(self, name: str) -> None:
        with self._lock:
            queue = self._queues.pop(name, None)
        if queue is not None:
            queue.close()

    def list_queues(self, prefix: str = "", marker: str = "", limit: int = 1000) -> tuple[list[str], str]:
        """Names in order after ``marker``; returns (page, next marker or "")."""
        with self._lock:
            names = sorted(n for n in self._queues if n.startswith(prefix) and n > marker)
        page = names[:limit]
        return page, (page[-1] if len(names) > limit else "")

    def queues(self) -> list[EmulatedQueue]:
        with self._lock:
            return list(self._queues.values())

    def stats(self) -> dict[str, QueueStats]:
        return {queue.name: queue.stats() for queue in self.queues()}

    def interrupt(self) -> None:
        """Release every pending long poll (the server is stopping)."""
        self.interrupted.set()
        for queue in self.queues():
            queue.wake()

    def resume(self) -> None:
        self.interrupted.clear()
