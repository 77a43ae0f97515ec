"""ApsaraVideo Live recording callbacks: status changes (``event``) and recording files (``uri``)."""

from __future__ import annotations

from pydantic import Field

from worker.events.envelope import EventData


class RecordStatus(EventData):
    """``record_started`` / ``record_paused`` / ``record_resumed``: no time, no id, just the stream."""

    domain: str
    app: str
    stream: str
    event: str


class RecordStarted(RecordStatus):
    pass


class RecordPaused(RecordStatus):
    pass


class RecordResumed(RecordStatus):
    pass


class FileCreated(EventData):
    domain: str
    app: str
    stream: str
    uri: str
    duration: float
    start_time: int
    stop_time: int
    push_args: dict[str, str] = Field(default_factory=dict)
