"""Built-in RTC event-subscription handler: one line per user or channel event of a subscription message."""

from __future__ import annotations

import structlog

from handlers._fields import as_mapping, fields_of, pick
from worker import Event, handler

log = structlog.get_logger(__name__)

MESSAGE_FIELDS = ("MsgId", "SubscribeID", "AppId", "ChannelID")
ITEM_FIELDS = ("UserId", "ChannelId", "EventTag", "SessionId", "Reason", "Role", "CurrentMedias", "Timestamp")


@handler("rtc.*")
def log_rtc_event(event: Event) -> None:
    # ``data`` is the message envelope plus this event's own item (``Event`` names the object holding it).
    data = fields_of(event.data)
    item = as_mapping(data.get(str(data.get("Event", ""))))
    fields = {**pick(data, MESSAGE_FIELDS), **pick(item, ITEM_FIELDS)}
    log.info("rtc event", index=event.index, **fields)
