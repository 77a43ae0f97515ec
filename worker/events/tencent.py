"""Tencent Cloud CSS relay callbacks (``event_type`` 314), one type per ``callback_event``.

``msg`` and ``source_urls`` are JSON inside strings: ``parsed_msg`` and ``parsed_source_urls`` decode them.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import AliasChoices, Field, TypeAdapter

from worker.events.envelope import EventData
from worker.events.jsonfield import Decoded, JsonFieldsModel, JsonText


class RelayMsg(EventData):
    """The decoded ``msg``; which keys appear depends on ``callback_event``. Times are in milliseconds."""

    task_start_time: int | None = None
    task_exit_time: int | None = None
    url: str | None = None
    index: str | None = None
    duration: int | None = None
    code: str | None = None
    message: str | None = None


class RelayEvent(JsonFieldsModel):
    event_type: int
    callback_event: str
    msg: JsonText
    # The table says appId, the samples send appid: accept both, dump as the samples do.
    appid: int | None = Field(
        default=None, validation_alias=AliasChoices("appid", "appId"), serialization_alias="appid"
    )
    source_urls: JsonText | None = None
    to_url: str | None = None
    stream_id: str | None = None
    task_id: str | None = None

    parsed_msg: ClassVar[Decoded[RelayMsg]] = Decoded("msg", TypeAdapter(RelayMsg))
    parsed_source_urls: ClassVar[Decoded[list[str]]] = Decoded("source_urls", TypeAdapter(list[str]))


class TaskStart(RelayEvent):
    pass


class VodSourceFileStart(RelayEvent):
    pass


class VodSourceFileFinish(RelayEvent):
    pass


class TaskExit(RelayEvent):
    pass
