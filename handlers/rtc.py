"""Built-in RTC event-subscription handler: one line per user or channel event of a subscription message."""

from __future__ import annotations

from typing import Any

import structlog

from handlers._fields import as_mapping, pick
from worker import Event, handler

log = structlog.get_logger(__name__)

MESSAGE_FIELDS = ("MsgId", "SubscribeID", "AppId", "ChannelID")
ITEM_FIELDS = ("UserId", "ChannelId", "EventTag", "SessionId", "Reason", "Role", "CurrentMedias", "Timestamp")


def _item(event: Event) -> dict[str, Any]:
    # ``raw`` is the subscription message with only this event's item left in ``Contents``.
    contents = event.raw.get("Contents")
    if not isinstance(contents, list) or len(contents) != 1:
        return {}
    item = as_mapping(contents[0])
    return dict(as_mapping(item.get(str(item.get("Event", "")))))


@handler("rtc.*")
def log_rtc_event(event: Event) -> None:
    fields = {**pick(event.raw, MESSAGE_FIELDS), **pick(_item(event), ITEM_FIELDS)}
    log.info("rtc event", index=event.index, **fields)
