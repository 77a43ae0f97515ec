"""One emulated queue: visibility timeouts, rotating receipt handles, priorities, delays, long polls.

Every operation is O(log n): visible messages sit in a heap ordered by (priority, enqueue order); delayed
and in-flight messages sit in a timer heap ordered by the time they become visible. Timer entries carry the
message's generation, so a deleted or re-timed message leaves a stale entry that is skipped when it surfaces
(lazy deletion) instead of an O(n) removal.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Sequence

from worker.devtools.mns_emulator.errors import MnsError
from worker.devtools.mns_emulator.ids import IdSource
from worker.devtools.mns_emulator.models import Delivery, NewMessage, QueueAttributes, QueueStats

DELAYED, ACTIVE, INACTIVE = 0, 1, 2


class _Message:
    __slots__ = (
        "body",
        "body_md5",
        "dequeue_count",
        "enqueue_ms",
        "first_dequeue_ms",
        "generation",
        "handle",
        "message_id",
        "priority",
        "seq",
        "state",
        "visible_at",
    )

    def __init__(self, message_id: str, new: NewMessage, seq: int, now: float) -> None:
        self.message_id = message_id
        self.body = new.body
        self.body_md5 = new.body_md5
        self.priority = new.priority
        self.seq = seq
        self.enqueue_ms = int(now * 1000)
        self.dequeue_count = 0
        self.first_dequeue_ms = 0
        self.visible_at = now + new.delay_seconds
        self.handle: str | None = None
        self.generation = 0
        self.state = DELAYED if new.delay_seconds > 0 else ACTIVE


class EmulatedQueue:
    def __init__(self, name: str, attributes: QueueAttributes, ids: IdSource, interrupted: threading.Event):
        self.name = name
        self.attributes = attributes
        self.create_time = int(time.time())
        self.last_modify_time = self.create_time
        self._ids = ids
        self._interrupted = interrupted
        self._cond = threading.Condition()
        self._messages: dict[str, _Message] = {}
        self._ready: list[tuple[int, int, str]] = []  # (priority, seq, message id)
        self._timers: list[tuple[float, int, str, int]] = []  # (visible at, seq, message id, generation)
        self._handles: dict[str, str] = {}  # live receipt handle -> message id
        self._seq = 0
        self._count = [0, 0, 0]  # by state: DELAYED, ACTIVE, INACTIVE
        self._sent = self._received = self._deleted = 0
        self._closed = False

    # --- queue level ---------------------------------------------------------------------------------------
    def set_attributes(self, attributes: QueueAttributes) -> None:
        with self._cond:
            self.attributes = attributes
            self.last_modify_time = int(time.time())

    def close(self) -> None:
        """The queue was deleted: pending long polls answer QueueNotExist."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def stats(self) -> QueueStats:
        with self._cond:
            self._promote(time.time())
            delayed, active, inactive = self._count
            return QueueStats(self.name, active, inactive, delayed, self._sent, self._received, self._deleted)

    # --- messages ------------------------------------------------------------------------------------------
    def send(self, batch: Sequence[NewMessage]) -> list[tuple[str, str]]:
        """Enqueue; returns (message id, body md5) per message."""
        now = time.time()
        out = []
        with self._cond:
            self._check_open()
            for new in batch:
                self._seq += 1
                msg = _Message(self._ids.message_id(int(now * 1000)), new, self._seq, now)
                self._messages[msg.message_id] = msg
                self._count[msg.state] += 1
                if msg.state == ACTIVE:
                    heapq.heappush(self._ready, (msg.priority, msg.seq, msg.message_id))
                else:
                    heapq.heappush(self._timers, (msg.visible_at, msg.seq, msg.message_id, 0))
                out.append((msg.message_id, msg.body_md5))
            self._sent += len(batch)
            self._cond.notify_all()
        return out

    def receive(self, count: int, wait_seconds: float) -> list[Delivery]:
        """Take up to ``count`` visible messages, waiting up to ``wait_seconds`` for the first one."""
        deadline = time.time() + wait_seconds
        with self._cond:
            while True:
                self._check_open()
                now = time.time()
                self._promote(now)
                taken = self._take(count, now)
                if taken:
                    if self._ready:
                        self._cond.notify()  # another poller can have the rest
                    return taken
                remaining = deadline - now
                if remaining <= 0 or self._interrupted.is_set():
                    return []
                if self._timers:  # wake up when the next delayed/in-flight message becomes visible
                    remaining = min(remaining, max(self._timers[0][0] - now, 0.001))
                self._cond.wait(remaining)

    def peek(self, count: int) -> list[Delivery]:
        with self._cond:
            self._check_open()
            self._promote(time.time())
            found = []
            for _, _, message_id in heapq.nsmallest(count, self._ready):
                msg = self._messages.get(message_id)
                if msg is not None and msg.state == ACTIVE:
                    found.append(self._delivery(msg, ""))
            return found

    def delete(self, handle: str) -> None:
        with self._cond:
            self._check_open()
            self._promote(time.time())
            self._drop(self._resolve(handle))

    def delete_batch(
        self, handles: Sequence[str], inject_failure: Callable[[], bool]
    ) -> list[tuple[str, MnsError]]:
        """Delete each handle; returns (handle, error) for the ones that were not deleted."""
        failures: list[tuple[str, MnsError]] = []
        with self._cond:
            self._check_open()
            self._promote(time.time())
            for handle in handles:
                try:
                    msg = self._resolve(handle)
                except MnsError as exc:
                    failures.append((handle, exc))
                    continue
                if inject_failure():
                    failures.append(
                        (handle, MnsError("InternalError", "Emulated partial failure: not deleted."))
                    )
                    continue
                self._drop(msg)
        return failures

    def change_visibility(self, handle: str, timeout: int) -> tuple[str, int]:
        """Returns the new receipt handle (the old one dies) and the next visible time in ms."""
        with self._cond:
            self._check_open()
            now = time.time()
            self._promote(now)
            msg = self._resolve(handle)
            self._handles.pop(handle, None)
            msg.handle = self._ids.receipt_handle()
            self._handles[msg.handle] = msg.message_id
            msg.generation += 1
            msg.visible_at = now + timeout
            heapq.heappush(self._timers, (msg.visible_at, msg.seq, msg.message_id, msg.generation))
            return msg.handle, int(msg.visible_at * 1000)

    # --- internals (call with the condition held) ----------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise MnsError("QueueNotExist", f"The queue name you provided is not exist: {self.name}.")

    def _promote(self, now: float) -> None:
        """Move delayed and in-flight messages whose time has come back to the visible heap."""
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, message_id, generation = heapq.heappop(timers)
            msg = self._messages.get(message_id)
            if msg is None or msg.generation != generation or msg.state == ACTIVE:
                continue  # deleted, re-timed, or already visible: a stale timer
            if msg.handle is not None:  # the handle dies when the message becomes visible again
                self._handles.pop(msg.handle, None)
                msg.handle = None
            self._count[msg.state] -= 1
            self._count[ACTIVE] += 1
            msg.state = ACTIVE
            heapq.heappush(self._ready, (msg.priority, msg.seq, message_id))

    def _take(self, count: int, now: float) -> list[Delivery]:
        taken: list[Delivery] = []
        retention = self.attributes.message_retention_period
        visibility = self.attributes.visibility_timeout
        while self._ready and len(taken) < count:
            _, _, message_id = heapq.heappop(self._ready)
            msg = self._messages.get(message_id)
            if msg is None or msg.state != ACTIVE:
                continue
            if msg.enqueue_ms / 1000 + retention <= now:  # expired while waiting: the service drops it
                self._drop(msg, count_as_deleted=False)
                continue
            msg.dequeue_count += 1
            if not msg.first_dequeue_ms:
                msg.first_dequeue_ms = int(now * 1000)
            msg.generation += 1
            msg.handle = self._ids.receipt_handle()
            self._handles[msg.handle] = message_id
            msg.visible_at = now + visibility
            self._count[ACTIVE] -= 1
            self._count[INACTIVE] += 1
            msg.state = INACTIVE
            heapq.heappush(self._timers, (msg.visible_at, msg.seq, message_id, msg.generation))
            taken.append(self._delivery(msg, msg.handle))
        self._received += len(taken)
        return taken

    def _resolve(self, handle: str) -> _Message:
        if not IdSource.is_well_formed(handle):
            raise MnsError("ReceiptHandleError", f"The receipt handle you provide is not valid: {handle!r}.")
        message_id = self._handles.get(handle)
        msg = self._messages.get(message_id) if message_id is not None else None
        if msg is None or msg.handle != handle or msg.state != INACTIVE:
            # Deleted, re-received, changed, or visible again: the handle is dead.
            raise MnsError("MessageNotExist", "Message not exist.")
        return msg

    def _drop(self, msg: _Message, *, count_as_deleted: bool = True) -> None:
        del self._messages[msg.message_id]
        if msg.handle is not None:
            self._handles.pop(msg.handle, None)
        self._count[msg.state] -= 1
        if count_as_deleted:
            self._deleted += 1

    @staticmethod
    def _delivery(msg: _Message, handle: str) -> Delivery:
        return Delivery(
            msg.message_id,
            handle,
            msg.body_md5,
            msg.body,
            msg.enqueue_ms,
            int(msg.visible_at * 1000),
            msg.first_dequeue_ms,
            msg.dequeue_count,
            msg.priority,
        )
