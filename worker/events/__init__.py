"""Typed models per source and ``normalize()``: raw payload -> list[Event]. A leaf: imports nothing else."""

from __future__ import annotations

from worker.errors import InvalidPayload
from worker.events.catalogue import CATALOGUE, SOURCES, EventSpec, model_for
from worker.events.envelope import Event, EventData, Transport
from worker.events.identify import detect_source
from worker.events.normalize import normalize

__all__ = [
    "CATALOGUE",
    "SOURCES",
    "Event",
    "EventData",
    "EventSpec",
    "InvalidPayload",
    "Transport",
    "detect_source",
    "model_for",
    "normalize",
]
