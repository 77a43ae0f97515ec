"""Event -> the bytes of a Celery protocol-2 task message as kombu's Redis transport stores it.

The publisher writes these bytes from a Lua script (dedupe + enqueue in one round trip), so this module
renders what ``app.send_task`` + ``kombu.transport.redis.Channel._put`` would: a JSON envelope whose ``body``
is ``[args, kwargs, embed]``, with the protocol-2 headers in ``headers`` and kombu's delivery metadata in
``properties``. An unmodified ``celery worker`` consumes it.

Two forms, one envelope:

- **by reference** (``worker/lua/envelope.lua``; what the Redis publish script enqueues): the argument is
  the event id, and the event itself is stored once, in the message's outbox record
  (``worker.delivery.outbox``), which the task reads when it starts. Before, the event travelled in the
  message and again in the outbox's full copy of it; now the payload is in Redis once per task message
  (``BENCHMARKS.md``, Redis bytes per event). The script renders the envelope, so the outbox sweeper
  rebuilds a lost message byte for byte from the record; its delivery tag is the task id, which lets the
  sweeper ask kombu whether it holds the message.
- **self-contained** (``TaskMessageBuilder``; a replay, which bypasses the outbox): the argument is the event.

Both keep the payload small: the event leaves ``data`` out whenever ``data`` can be derived again from
``raw`` (every single-event payload, and each RTC item: ``worker.events.fanout``); the body is JSON text
(kombu's ``body_encoding`` ``utf-8``, which the worker app configures for its own re-publishes too), not
base64 of it; headers whose value is Celery's default are left out (Celery's worker reads every header but
``id`` and ``task`` with a default). ``argsrepr`` stays: it is what the worker's task events, and so Flower,
show as the arguments (the event id).
"""

from __future__ import annotations

import json
import os
import random
import socket
from dataclasses import dataclass

from worker.events import Event
from worker.events.envelope import data_from_raw

# The protocol-2 body's third element: no callbacks, errbacks, chain or chord (Celery reads them with .get).
_BODY_PREFIX = b"[["
_BODY_SUFFIX = b"], {}, {}]"
# Left out of the task argument when derivable from ``raw``: derived again when the worker rebuilds the event.
_WIRE_EXCLUDE = {"data"}

# The RFC 4122 variant bits (10xx) put on the first hex digit of the fourth group.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}

_dumps_str = json.encoder.encode_basestring  # C-accelerated JSON string escaping, no dict walk


def encode_event(event: Event) -> bytes:
    """The event as the task argument: its JSON dump without the transport's unset fields, and without
    ``data`` when ``data`` is ``raw`` validated (``Event.model_validate`` of it equals ``event``)."""
    exclude = _WIRE_EXCLUDE if data_from_raw(event) else None
    return event.__pydantic_serializer__.to_json(event, exclude=exclude, exclude_none=True)


def encode_args_body(event: Event) -> bytes:
    """The protocol-2 body ``[[event_json], {}, embed]``."""
    return _BODY_PREFIX + encode_event(event) + _BODY_SUFFIX


def task_argsrepr(event: Event) -> str:
    """What Flower shows as the task's arguments: short and enough to find the event (never the payload)."""
    return f"[<Event {event.type} id={event.id}>]"


def new_task_id() -> str:
    """A random (version 4) UUID string, as Celery's own ids, at two per published event (task id and delivery
    tag). Ids need to be unique, not secret: the ``random`` module's generator (seeded from the OS, and
    re-seeded in a forked child by the module itself) is ~4x cheaper than ``str(uuid.uuid4())`` and makes no
    system call, which a busy shim notices."""
    h = f"{random.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


@dataclass(frozen=True)
class TaskMessage:
    task_id: str
    queue: str
    payload: bytes  # the JSON envelope, as stored in the Redis list


class TaskMessageBuilder:
    """Renders envelopes; one builder per publisher (it captures the origin node name at construction)."""

    def __init__(self, origin: str | None = None) -> None:
        origin = origin or f"gen{os.getpid()}@{socket.gethostname()}"
        self._origin = _dumps_str(origin)
        self._names: dict[str, str] = {}

    def _name(self, event_type: str) -> str:
        escaped = self._names.get(event_type)
        if escaped is None:
            escaped = self._names[event_type] = _dumps_str(event_type)
        return escaped

    def build(self, event: Event, queue: str, task_id: str | None = None) -> TaskMessage:
        task_id = task_id or new_task_id()
        body = _dumps_str(encode_args_body(event).decode("utf-8"))
        name = self._name(event.type)
        queue_json = _dumps_str(queue)
        # Key order mirrors celery.app.amqp.AMQP.as_task_v2 and kombu's virtual Channel; ``"delivery_tag": "``
        # is matched by the outbox sweeper.
        payload = (
            f'{{"body": {body}, "content-encoding": "utf-8", "content-type": "application/json", '
            f'"headers": {{"lang": "py", "task": {name}, "id": "{task_id}", "root_id": "{task_id}", '
            f'"argsrepr": {_dumps_str(task_argsrepr(event))}, "origin": {self._origin}}}, '
            f'"properties": {{"delivery_mode": 2, '
            f'"delivery_info": {{"exchange": "", "routing_key": {queue_json}}}, "priority": 0, '
            f'"body_encoding": "utf-8", "delivery_tag": "{new_task_id()}"}}}}'
        )
        return TaskMessage(task_id=task_id, queue=queue, payload=payload.encode("utf-8"))
