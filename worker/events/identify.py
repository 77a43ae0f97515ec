"""Helpers for a provider's identifier: the ``Item`` it returns and the checks of the fields naming a type.

Which event type(s) a payload is depends on the provider, so each provider definition (``worker.providers``)
carries its own identifier built from these helpers. A payload that lacks the fields naming its type is
rejected with ``InvalidPayload`` saying which field; a payload that names a type we do not know becomes
``unknown.<source>`` (never dropped).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from worker.errors import InvalidPayload
from worker.events.catalogue import CATALOGUE


@dataclass(frozen=True)
class Item:
    """One event found in a payload: its normalized type, the object its model validates, its position."""

    type: str
    payload: dict[str, Any]
    index: int = 0


Identifier = Callable[[dict[str, Any]], list[Item]]


def known(source: str, event_type: str) -> str:
    """``event_type`` if catalogued, else ``unknown.<source>``."""
    return event_type if event_type in CATALOGUE else f"unknown.{source}"


def type_name(obj: Mapping[str, Any], field: str, why: str, where: str = "") -> str:
    """The non-empty string in ``obj[field]``; ``InvalidPayload`` naming the field (and ``why``) otherwise."""
    value = obj.get(field)
    if value is None:
        raise InvalidPayload(f"missing field {where}{field} ({why})")
    if not isinstance(value, str) or not value.strip():
        raise InvalidPayload(f"field {where}{field} must be a non-empty string ({why})")
    return value
