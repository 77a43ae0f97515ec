"""ApsaraVideo Live production studio (caster) callbacks: ``CasterId``, ``EventType``, ``EventMessage``.

``ResponseTime`` (milliseconds) appears in the documented playlist-progress sample only.
"""

from __future__ import annotations

from worker.events.envelope import EventData


class CasterEvent(EventData):
    EventType: str
    EventMessage: EventData
    CasterId: str | None = None
    ResponseTime: int | None = None


class RuntimeErrorMessage(EventData):
    RequestId: str | None = None
    SceneId: str | None = None
    LayoutId: str | None = None
    ResourceId: str | None = None
    ComponentId: str | None = None
    Code: str | None = None
    Message: str | None = None


class OperateMessage(RuntimeErrorMessage):
    RequestId: str  # required for OperateCallback


class OperateCallback(CasterEvent):
    CasterId: str
    EventMessage: OperateMessage


class RuntimeErrorCallback(CasterEvent):
    CasterId: str
    EventMessage: RuntimeErrorMessage


class EpisodeGroupMessage(EventData):
    ProgramId: str
    EpisodeId: str
    Code: str | None = None
    Message: str | None = None


class EpisodeGroupCallback(CasterEvent):
    EventMessage: EpisodeGroupMessage


class ShowListDTSMessage(EventData):
    ProgressTime: str  # milliseconds, sent as a string
    ShowId: str
    Duration: str
    ShowName: str


class ShowListDTSCallback(CasterEvent):
    EventMessage: ShowListDTSMessage
