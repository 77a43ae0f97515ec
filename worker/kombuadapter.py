"""Every place the worker touches kombu's or Celery's internals, and the versions they were tested on.

Each internal is pinned by a test that fails if the library changes it (``tests/test_kombuadapter.py``
unless said otherwise):

1. kombu's virtual ``QoS._delivered`` (delivery tag -> message: what a channel holds unacknowledged) and
   ``QoS._dirty`` (tags acked but not yet flushed from ``_delivered``): ``held_deliveries``.
2. kombu's Redis ``Channel.conn_or_acquire()`` (the channel's own client: its TLS, Sentinel and
   ``global_keyprefix``) and ``Channel.unacked_index_key``: ``rescore``.
3. kombu's Redis ``Channel.unacked_key`` / ``unacked_index_key`` (``unacked``, ``unacked_index``; the
   transport options of those names rename them): ``unacked_key``, ``unacked_index_key``.
4. Celery's worker ``Consumer.task_consumer`` (a kombu ``Consumer`` whose ``channel`` is the one that
   receives the tasks): ``consumer_channel``.
5. The wire format: Celery's protocol 2 (``celery.app.amqp.AMQP.as_task_v2``) as kombu's Redis
   ``Channel._put`` stores it, rendered without Celery by ``worker.delivery.taskmessage`` and
   ``worker/lua/envelope.lua`` (``tests/test_publish.py``: the bytes equal ``app.send_task``'s).

``check_versions`` (at the worker's, the consumer's and the shim's start) warns, naming the tested versions,
when the installed Celery or kombu is another minor release.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import structlog
from kombu.transport.redis import Channel

log = structlog.get_logger(__name__)

# The versions the internals above were read from and are tested on (requirements.lock).
TESTED = {"celery": "5.6.3", "kombu": "5.7.0"}


def _minor(text: str) -> tuple[str, ...]:
    return tuple(text.split(".")[:2])


def untested_versions(installed: Mapping[str, str] | None = None) -> dict[str, str]:
    """Library -> installed version, for each whose minor release differs from the tested one."""
    if installed is None:
        installed = {}
        for name in TESTED:
            with contextlib.suppress(PackageNotFoundError):
                installed[name] = version(name)
    return {name: found for name, found in installed.items() if _minor(found) != _minor(TESTED[name])}


_checked = False


def check_versions() -> None:
    """Warn once per process if Celery or kombu is outside the tested versions (the internals may differ)."""
    global _checked  # noqa: PLW0603 - once per process
    if _checked:
        return
    _checked = True
    if found := untested_versions():
        tested = ", ".join(f"{name} {v}" for name, v in TESTED.items())
        log.warning(
            "broker.untested_versions",
            installed=found,
            tested=tested,
            detail=f"the worker touches kombu/Celery internals tested with {tested} (worker/kombuadapter.py)",
        )


# --- 3. key names -------------------------------------------------------------------------------------------
def unacked_key(transport_options: Mapping[str, Any] | None = None) -> str:
    """kombu's unacked hash, as a Redis channel made with ``transport_options`` names it."""
    return str((transport_options or {}).get("unacked_key", Channel.unacked_key))


def unacked_index_key(transport_options: Mapping[str, Any] | None = None) -> str:
    """kombu's unacked index, as a Redis channel made with ``transport_options`` names it."""
    return str((transport_options or {}).get("unacked_index_key", Channel.unacked_index_key))


# --- 1. what a channel holds --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Delivery:
    tag: str
    task_id: str | None


def held_deliveries(channel: Any) -> list[Delivery]:
    """The deliveries a kombu virtual channel holds unacknowledged (``QoS._delivered`` less ``_dirty``)."""
    qos = channel.qos
    for _ in range(5):
        try:
            # The consumer thread mutates these; a snapshot that races a change is simply taken again.
            items = list(qos._delivered.items())
            acked = set(qos._dirty)  # acked, not yet flushed from _delivered
        except RuntimeError:
            continue
        return [Delivery(str(tag), _task_id(message)) for tag, message in items if tag not in acked]
    return []


def _task_id(message: Any) -> str | None:
    headers = getattr(message, "headers", None) or {}
    task_id = headers.get("id")
    return str(task_id) if task_id else None


# --- 2. the lease -------------------------------------------------------------------------------------------
def rescore(channel: Any, tags: Iterable[str], at: float | None = None) -> None:
    """Re-score ``tags`` in the channel's unacked index (through the channel's own client); XX: never re-add
    an entry that was acked or restored meanwhile."""
    scores = {tag: time.time() if at is None else at for tag in tags}
    if scores:
        with channel.conn_or_acquire() as client:
            client.zadd(channel.unacked_index_key, scores, xx=True)


# --- 4. the worker's consumer -------------------------------------------------------------------------------
def consumer_channel(consumer: Any) -> Any:
    """The channel a Celery worker consumer receives its tasks on, or None while it has none."""
    task_consumer = getattr(consumer, "task_consumer", None)
    return getattr(task_consumer, "channel", None)
