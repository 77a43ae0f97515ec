"""Event -> the exact bytes kombu's Redis transport would LPUSH for a Celery protocol-2 task message.

The publisher writes these bytes from a Lua script (dedupe + enqueue in one round trip), so this module
reproduces what ``app.send_task`` + ``kombu.transport.redis.Channel._put`` produce: a JSON envelope whose
``body`` is the base64 of ``[args, kwargs, embed]``, with the protocol-2 headers in ``headers`` and the
delivery metadata kombu adds in ``properties``. An unmodified ``celery worker`` consumes it.

The static parts of the envelope are rendered once; per event we only serialise the event (pydantic's
Rust serializer), base64 it and splice four strings in.
"""

from __future__ import annotations

import base64
import json
import os
import random
import socket
from dataclasses import dataclass

from worker.events import Event

# The third element of a protocol-2 body: no callbacks, errbacks, chain or chord.
_BODY_PREFIX = b"[["
_BODY_SUFFIX = b'], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]'

# The RFC 4122 variant bits (10xx) put on the first hex digit of the fourth group.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}

_dumps_str = json.encoder.encode_basestring  # C-accelerated JSON string escaping, no dict walk


def encode_args_body(event: Event) -> bytes:
    """The protocol-2 body ``[[event_json], {}, embed]``: args are ``[event.model_dump(mode="json")]``."""
    return _BODY_PREFIX + event.__pydantic_serializer__.to_json(event) + _BODY_SUFFIX


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
        body = base64.b64encode(encode_args_body(event)).decode("ascii")
        name = self._name(event.type)
        queue_json = _dumps_str(queue)
        # Key order and values mirror celery.app.amqp.AMQP.as_task_v2 and kombu's virtual Channel.
        payload = (
            f'{{"body": "{body}", "content-encoding": "utf-8", "content-type": "application/json", '
            f'"headers": {{"lang": "py", "task": {name}, "id": "{task_id}", "shadow": null, "eta": null, '
            f'"expires": null, "group": null, "group_index": null, "retries": 0, "timelimit": [null, null], '
            f'"root_id": "{task_id}", "parent_id": null, "argsrepr": {_dumps_str(task_argsrepr(event))}, '
            f'"kwargsrepr": "{{}}", "origin": {self._origin}, "ignore_result": false, '
            f'"replaced_task_nesting": 0, "stamped_headers": null, "stamps": {{}}}}, '
            f'"properties": {{"correlation_id": "{task_id}", "reply_to": "", "delivery_mode": 2, '
            f'"delivery_info": {{"exchange": "", "routing_key": {queue_json}}}, "priority": 0, '
            f'"body_encoding": "base64", "delivery_tag": "{new_task_id()}"}}}}'
        )
        return TaskMessage(task_id=task_id, queue=queue, payload=payload.encode("utf-8"))
