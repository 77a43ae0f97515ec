"""IMS writing to its MNS queue: a thread that sends batches of bodies at a steady rate for a bounded time.

Bodies come from ``payloads.mns_body`` (all 29 IMS types, plain and base64, unknown types, poison, garbage,
failed validation). Some valid bodies are sent a second time as a new message (IMS's own retries look like
that): the publisher's dedupe must absorb them. Sending goes through the emulator's control API, which is
never subject to the injected faults: the faults are for the consumer.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

from tests.chaos.ledger import Sent
from tests.chaos.payloads import INVALID_PAYLOAD, MnsBody, mns_body
from tests.mns_emulator import EmulatorHandle

TICK_SECONDS = 0.25


class MnsProducer(threading.Thread):
    def __init__(
        self,
        mns: EmulatorHandle,
        queue: str,
        *,
        seed: int,
        sent: Sent,
        lock: threading.Lock,
        rate: float,
        seconds: float,
        duplicate_rate: float = 0.04,
    ) -> None:
        super().__init__(name="mns-producer", daemon=True)
        self.mns = mns
        self.queue = queue
        self.rng = random.Random(seed)
        self.sent = sent
        self.lock = lock
        self.rate = rate
        self.seconds = seconds
        self.duplicate_rate = duplicate_rate
        self.stats: Counter[str] = Counter()
        self.error: BaseException | None = None
        self._recent: list[str] = []

    def run(self) -> None:
        try:
            self._produce()
        except BaseException as exc:  # reported by the scenario; a producer must not die silently
            self.error = exc

    def _produce(self) -> None:
        seq = 0
        stop_at = time.monotonic() + self.seconds
        carry = 0.0
        while time.monotonic() < stop_at:
            carry += self.rate * TICK_SECONDS
            count, carry = int(carry), carry - int(carry)
            batch: list[str] = []
            for _ in range(count):
                body = mns_body(seq, self.rng)
                seq += 1
                self._register(body)
                batch.append(body.text)
                if self._recent and self.rng.random() < self.duplicate_rate:
                    batch.append(self.rng.choice(self._recent))
                    self.stats["duplicate_messages"] += 1
                if body.kind == "valid":
                    self._recent = [*self._recent[-50:], body.text]
            if batch:
                self.rng.shuffle(batch)
                self.mns.send(self.queue, batch)
                self.stats["messages"] += len(batch)
            time.sleep(TICK_SECONDS)

    def _register(self, body: MnsBody) -> None:
        self.stats[f"bodies_{body.kind}"] += 1
        with self.lock:
            if not body.events:
                self.sent.dead_bodies[body.text] = INVALID_PAYLOAD
                return
            for event_id, event_type in body.events:
                self.sent.expect({event_id: event_type}, body.poison)
