"""One received batch -> events published, poison dead-lettered, and the receipt handles that may be deleted.

The rule this module exists for: a message's handle is returned for deletion only once its events are durably
in Redis (published, or found already enqueued) or the message itself is in the dead-letter store.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis
import structlog

from worker.deadletter import DeadLetterStore
from worker.errors import BrokerUnavailable, InvalidPayload, TooManyEvents
from worker.events import Event, Transport
from worker.events.fanout import DEFAULT_MAX_EVENTS
from worker.mns import metrics
from worker.mns.decode import decode_body
from worker.providers import normalize
from worker.publish import Publisher

log = structlog.get_logger(__name__)
_DEBUG = logging.getLogger(__name__)  # asked before building debug lines: structlog would build them first

SOURCE = "ims"  # MNS queues carry IMS events only; webhooks of other providers arrive through the shim


@dataclass
class BatchOutcome:
    handles_to_delete: list[str] = field(default_factory=list)
    published: int = 0
    duplicates: int = 0
    dead_lettered: int = 0


@dataclass(frozen=True)
class _Rejected:
    message: Any
    transport: Transport
    reason: str
    error: str


class BatchHandler:
    """Turns SDK messages into published events; owns no connection of its own."""

    def __init__(
        self,
        queue_name: str,
        publisher: Publisher,
        dead_letters: DeadLetterStore,
        max_dequeue_count: int,
        max_events: int = DEFAULT_MAX_EVENTS,
    ) -> None:
        self.queue_name = queue_name
        self.publisher = publisher
        self.dead_letters = dead_letters
        self.max_dequeue_count = max_dequeue_count
        self.max_events = max_events

    def handle(self, messages: Sequence[Any]) -> BatchOutcome:
        """Publish what is valid, dead-letter what is not. Raises ``BrokerUnavailable`` before anything from
        this batch becomes deletable, so that MNS redelivers it."""
        received_at = datetime.now(UTC)
        accepted: list[tuple[Any, list[Event]]] = []
        rejected: list[_Rejected] = []
        for message in messages:
            # Values from the SDK's own parsing (str, int): no validation needed per message.
            transport = Transport.model_construct(
                kind="mns",
                queue=self.queue_name,
                message_id=message.message_id,
                dequeue_count=message.dequeue_count,
            )
            if message.dequeue_count > self.max_dequeue_count:
                rejected.append(
                    _Rejected(
                        message,
                        transport,
                        "dequeue-limit",
                        f"DequeueCount {message.dequeue_count} exceeds the limit {self.max_dequeue_count}",
                    )
                )
                continue
            try:
                events = normalize(SOURCE, decode_body(message.message_body), transport=transport,
                                   received_at=received_at, max_events=self.max_events)  # fmt: skip
            except TooManyEvents as exc:
                rejected.append(_Rejected(message, transport, "too-many-events", str(exc)))
                continue
            except InvalidPayload as exc:
                rejected.append(_Rejected(message, transport, "invalid-payload", str(exc)))
                continue
            accepted.append((message, events))

        outcome = BatchOutcome()
        events = [event for _, message_events in accepted for event in message_events]
        if events:
            for result in self.publisher.publish(events):
                if result.enqueued:
                    outcome.published += 1
                else:
                    outcome.duplicates += 1
        trace = _DEBUG.isEnabledFor(logging.DEBUG)
        for message, message_events in accepted:
            outcome.handles_to_delete.append(message.receipt_handle)
            for event in message_events if trace else ():
                log.debug(
                    "mns.message.published",
                    mns_message_id=message.message_id,
                    event_id=event.id,
                    event_type=event.type,
                    dequeue_count=message.dequeue_count,
                )
        for item in rejected:
            if self._dead_letter(item):
                outcome.dead_lettered += 1
                outcome.handles_to_delete.append(item.message.receipt_handle)
        metrics.PUBLISHED.labels(self.queue_name).inc(outcome.published)
        metrics.DUPLICATES.labels(self.queue_name).inc(outcome.duplicates)
        return outcome

    def _dead_letter(self, item: _Rejected) -> bool:
        """Store the raw body with the reason; False (keep the message in MNS) if Redis refused."""
        try:
            added = self.dead_letters.add(
                once_key=f"mns:{self.queue_name}:{item.message.message_id}",
                raw=item.message.message_body,
                source=SOURCE,
                reason=item.reason,
                error=item.error,
                attempts=item.message.dequeue_count,
                transport=item.transport,
            )
        except (redis.RedisError, BrokerUnavailable, OSError) as exc:
            log.warning(
                "mns.message.dead_letter_failed",
                mns_message_id=item.message.message_id,
                dequeue_count=item.message.dequeue_count,
                reason=item.reason,
                error=type(exc).__name__,
            )
            metrics.ERRORS.labels(self.queue_name, "dead-letter-store").inc()
            return False
        if added is None:
            log.info("mns.message.already_dead_lettered", mns_message_id=item.message.message_id,
                     dequeue_count=item.message.dequeue_count)  # fmt: skip
            return True
        log.warning(
            "mns.message.dead_lettered",
            mns_message_id=item.message.message_id,
            dequeue_count=item.message.dequeue_count,
            reason=item.reason,
            error=item.error,
        )
        metrics.DEAD_LETTERED.labels(self.queue_name, item.reason).inc()
        return True
