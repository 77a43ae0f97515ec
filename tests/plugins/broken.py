"""A plugin that fails at import time: subscribes to an event type that does not exist."""

from __future__ import annotations

from worker import Event, handler


@handler("ims.NoSuchEvent")
def never(event: Event) -> None:  # pragma: no cover - never registered
    raise AssertionError("unreachable")
