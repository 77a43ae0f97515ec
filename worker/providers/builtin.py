"""Helpers shared by the built-in provider definitions."""

from __future__ import annotations

from worker.events.catalogue import CATALOGUE
from worker.events.envelope import EventData


def catalogued(source: str) -> dict[str, tuple[type[EventData], str]]:
    """The event types the catalogue already holds for ``source`` (the built-in models), unknown excluded."""
    return {
        name: (spec.model, spec.description)
        for name, spec in CATALOGUE.items()
        if spec.source == source and not name.startswith("unknown.")
    }


def paths(*dotted: str) -> tuple[tuple[str, ...], ...]:
    """``paths("MessageBody.MediaId", "MediaId")`` -> ``(("MessageBody", "MediaId"), ("MediaId",))``."""
    return tuple(tuple(path.split(".")) for path in dotted)
