"""Built-in handler for events no parser recognised: a warning with the raw type, so they are noticed."""

from __future__ import annotations

import structlog

from handlers._fields import fields_of
from worker import Event, handler

log = structlog.get_logger(__name__)

# Where each provider puts the type of an event; the first present one is reported.
TYPE_FIELDS = ("EventType", "event", "callback_event", "Event", "event_type", "type")


@handler("unknown.*")
def warn_unknown_event(event: Event) -> None:
    data = fields_of(event.data)  # unrecognised: the generic model, every field kept as sent
    raw_type = next((data[k] for k in TYPE_FIELDS if data.get(k) not in (None, "")), None)
    log.warning(
        "unrecognised event",
        raw_type=raw_type,
        raw_keys=sorted(data)[:20],
        transport=event.transport.kind,
        mns_queue=event.transport.queue,
    )
