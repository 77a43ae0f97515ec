"""Typed models per source, the catalogue and the normalizing machinery. A leaf: imports nothing else.

Which rules apply to which source lives in the provider definitions (``worker.providers``), whose
``normalize(source, raw)`` is the entry point.
"""

from __future__ import annotations

from worker.errors import InvalidPayload
from worker.events.catalogue import CATALOGUE, SOURCES, EventSpec, model_for
from worker.events.envelope import Event, EventData, Transport

__all__ = [
    "CATALOGUE",
    "SOURCES",
    "Event",
    "EventData",
    "EventSpec",
    "InvalidPayload",
    "Transport",
    "model_for",
]
