"""``business_keys(event)``: the values an operator searches by (MediaId, JobId, ChannelId...)."""

from __future__ import annotations

from typing import Any

from worker.events.envelope import Event
from worker.providers.registry import _PROVIDERS
from worker.providers.spec import BusinessKey


def _at(obj: Any, path: tuple[str, ...]) -> str | None:
    for part in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    if isinstance(obj, bool) or obj is None:
        return None
    if isinstance(obj, str):
        return obj or None
    if isinstance(obj, int | float):
        return str(obj)
    return None


def _first(payload: dict[str, Any], key: BusinessKey) -> str | None:
    for path in key.paths:
        value = _at(payload, path)
        if value is not None:
            return value
    return None


def business_keys(event: Event) -> dict[str, str]:
    """Key name -> value (as a string) for the keys of ``event``'s provider present in it; {} if none.

    Read from the event's own item (for RTC, the envelope plus that item), so a sibling's keys never leak in.
    """
    spec = _PROVIDERS.get(event.source)
    if spec is None or not spec.business_keys:
        return {}
    payload = event.data.model_dump(mode="json")
    found = {key.name: _first(payload, key) for key in spec.business_keys}
    return {name: value for name, value in found.items() if value is not None}
