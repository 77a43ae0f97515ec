"""Sample events of every type with field overrides, from the provider samples shipped in the package."""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping
from typing import Any

from worker.demo import load_samples
from worker.events import Event
from worker.providers import normalize


@functools.cache
def _by_type() -> dict[str, tuple[str, str]]:
    """Event type -> (source, sample body)."""
    found: dict[str, tuple[str, str]] = {}
    for sample in load_samples():
        for event_type in sample.types:
            found.setdefault(event_type, (sample.source, sample.body))
    return found


def sample_types() -> list[str]:
    """Every event type a bundled sample exists for (all catalogued types but ``unknown.*``)."""
    return sorted(_by_type())


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def sample_payload(event_type: str, **overrides: Any) -> dict[str, Any]:
    """The provider's JSON payload for ``event_type`` with ``overrides`` merged in (a fresh copy)."""
    try:
        _, body = _by_type()[event_type]
    except KeyError:
        raise KeyError(
            f"no bundled sample for {event_type!r}; these exist: {', '.join(sample_types())}"
        ) from None
    payload: dict[str, Any] = json.loads(body)
    return _merge(payload, overrides)


def sample_event(event_type: str, **overrides: Any) -> Event:
    """``sample_event("ims.ProduceMediaComplete", MessageBody={"Status": "Failed"})``: a normalized Event.

    ``overrides`` are top-level payload fields in the provider's names; a dict value is merged into the
    sample's object (other fields kept). The event id is computed from the result, so overrides change it.
    """
    payload = sample_payload(event_type, **overrides)  # raises KeyError naming the types there are
    source, _ = _by_type()[event_type]
    events = normalize(source, payload)
    for event in events:
        if event.type == event_type:
            return event
    raise ValueError(f"the overrides turned the {event_type} sample into {[e.type for e in events]}")
