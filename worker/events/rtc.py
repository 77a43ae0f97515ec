"""ApsaraVideo Live RTC event subscription: one message carries ``Contents``; each item is one event.

The event's ``data`` is the message with ``Contents`` replaced by that one item's fields (``Event`` and the
``UserEvent`` or ``ChannelEvent`` object), so handlers read ``data.UserEvent.UserId`` and ``data.MsgId``.
"""

from __future__ import annotations

from pydantic import Field

from worker.events.envelope import EventData
from worker.events.jsonfield import CommaInts


class RtcMessage(EventData):
    MsgId: str | None = None
    MsgTimestamp: int | float | None = None
    SubscribeID: str | None = None
    AppId: str | None = None
    ChannelID: str | None = None
    Event: str


class UserEventBody(EventData):
    UserId: str
    SessionId: str
    EventTag: str
    Timestamp: int | float
    Role: int
    # Documented as always present and as "only for Join": absent is accepted.
    Reason: int | None = None
    # Documented as an integer, sent as "1,2,3" (1 audio, 2 video, 3 screen sharing).
    CurrentMedias: CommaInts = Field(default_factory=list)


class UserEvent(RtcMessage):
    UserEvent: UserEventBody


class ChannelEventBody(EventData):
    EventTag: str
    Timestamp: int | float
    ChannelId: str | None = None


class ChannelEvent(RtcMessage):
    ChannelEvent: ChannelEventBody
