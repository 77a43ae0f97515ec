"""Where the worker touches kombu's and Celery's internals (ARCHITECTURE.md, "The kombu/Celery adapter").

kombu's Redis transport names its bookkeeping keys on its channel: ``unacked`` (hash: delivery tag ->
message, for the messages a worker holds) and ``unacked_index`` (sorted set: delivery tag -> delivered at);
the transport options ``unacked_key`` / ``unacked_index_key`` rename them. The outbox sweep and the metrics
read them by the names the channel would use, taken from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kombu.transport.redis import Channel


def unacked_key(transport_options: Mapping[str, Any] | None = None) -> str:
    """kombu's unacked hash, as a Redis channel made with ``transport_options`` names it."""
    return str((transport_options or {}).get("unacked_key", Channel.unacked_key))


def unacked_index_key(transport_options: Mapping[str, Any] | None = None) -> str:
    """kombu's unacked index, as a Redis channel made with ``transport_options`` names it."""
    return str((transport_options or {}).get("unacked_index_key", Channel.unacked_index_key))
