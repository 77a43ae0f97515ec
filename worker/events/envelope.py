"""The normalized event handed to handlers, and the transport it arrived by.

``Event`` is frozen and round-trips through JSON: ``Event.model_validate(e.model_dump(mode="json")) == e``.
That is how it crosses the broker: the task message carries the dump, the worker rebuilds the typed event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, model_validator

_DATA_FROM_RAW = "_data_from_raw"


class EventData(BaseModel):
    """Base of every typed payload model. Providers add fields over time: extras are kept, never rejected.

    Models dump by alias (the provider's names) so that an event round-trips through JSON; numbers sent
    where the docs promise strings are accepted as strings.
    """

    model_config = ConfigDict(
        extra="allow", populate_by_name=True, frozen=True, serialize_by_alias=True, coerce_numbers_to_str=True
    )


class Transport(BaseModel):
    """How an event reached us: from an MNS queue (with its message id and dequeue count) or over HTTP."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["mns", "http"]
    queue: str | None = None
    message_id: str | None = None
    dequeue_count: int | None = None
    request_id: str | None = None


class Event(BaseModel):
    """One provider event, validated and normalized.

    ``type`` is the Celery task name (``ims.ProduceMediaComplete``); ``id`` is stable across redeliveries of
    the same provider event; ``data`` is the typed model of that type with the provider's field names;
    ``raw`` is the original JSON object (for RTC, the subscription message with only this event's item left in
    ``Contents``; ``index`` is that item's position in the message as sent).
    """

    model_config = ConfigDict(frozen=True)

    type: str
    id: str
    source: str
    occurred_at: datetime | None = None
    received_at: datetime
    data: SerializeAsAny[EventData]
    raw: dict[str, Any]
    transport: Transport = Field(default_factory=lambda: Transport(kind="http"))
    index: int = 0

    @model_validator(mode="before")
    @classmethod
    def _typed_data(cls, value: Any) -> Any:
        # Rebuilding from JSON: a plain dict in ``data`` becomes the typed model registered for ``type``; a
        # task message that left ``data`` out (``worker.delivery.taskmessage``) has it derived from ``raw``.
        if not isinstance(value, dict) or "type" not in value:
            return value
        from worker.events.catalogue import model_for  # noqa: PLC0415 - the catalogue imports this module

        data = value.get("data")
        if "data" not in value and isinstance(value.get("raw"), dict):
            from worker.events.fanout import item_of  # noqa: PLC0415 - fanout imports the errors only

            data = item_of(value["raw"])
        if isinstance(data, dict):
            value = {**value, "data": model_for(str(value["type"])).model_validate(data)}
        return value


# A transport optimisation, not part of the plugin API: kept off ``Event``'s attributes.
def data_from_raw(event: Event) -> bool:
    """True when ``event.data`` can be derived again from ``event.raw`` (``worker.events.fanout.item_of``; set
    by ``normalize``): a task message may then leave ``data`` out (``worker.delivery.taskmessage``)."""
    return bool(event.__dict__.get(_DATA_FROM_RAW, False))


def mark_data_from_raw(event: Event) -> None:
    # Not a field: outside validation, dumps and equality (pydantic ignores non-field ``__dict__`` keys, as it
    # does for cached properties), so a rebuilt event still equals the original.
    event.__dict__[_DATA_FROM_RAW] = True
