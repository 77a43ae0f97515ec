"""PROVISIONAL stub: the real normalize() lands with the event models."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from worker.events.envelope import Event, Transport


def normalize(
    source: str,
    raw: bytes | str | Mapping[str, Any],
    *,
    transport: Transport | None = None,
    received_at: datetime | None = None,
) -> list[Event]:
    raise NotImplementedError
