"""IMS callback events for video AI, intelligent editing and real-time media processing.

The envelope and the shapes shared with other events are in ``ims``; media processing events are in
``ims_media``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import AliasChoices, Field, TypeAdapter

from worker.events.envelope import EventData
from worker.events.ims import ImsBody, ImsEvent, MediaRef
from worker.events.jsonfield import Decoded, JsonText

MEDIA_REF: TypeAdapter[MediaRef] = TypeAdapter(MediaRef)

# --- video AI -------------------------------------------------------------------------------------------


class AIMediaAuditBody(ImsBody):
    JobId: str
    Status: str
    MediaId: str

    # Documented as a plain ID; the documented sample carries {"media": ..., "type": "Media"} as JSON.
    parsed_media_id: ClassVar[Decoded[MediaRef]] = Decoded("MediaId", MEDIA_REF, lenient=True)


class AIMediaAuditComplete(ImsEvent):
    MessageBody: AIMediaAuditBody


class AIResultItem(EventData):
    Score: float | None = None
    Time: str | None = None
    Url: str | None = None


AIResult = list[AIResultItem] | dict[str, Any]
AI_RESULT: TypeAdapter[AIResult] = TypeAdapter(AIResult)


class AIProduceBody(ImsBody):
    JobId: str
    Status: str
    FunctionName: str
    OutputFiles: list[str]
    Result: JsonText
    UserData: str

    # A list of scored items for Cover and similar functions; other functions return an object.
    parsed_result: ClassVar[Decoded[AIResult]] = Decoded("Result", AI_RESULT)


class AIProduceComplete(ImsEvent):
    MessageBody: AIProduceBody


class MediaAiAnalysisBody(ImsBody):
    Status: str
    JobStatus: str
    Type: str
    MediaId: str


class MediaAiAnalysisComplete(ImsEvent):
    MessageBody: MediaAiAnalysisBody


# --- intelligent editing --------------------------------------------------------------------------------


class ProduceMediaBody(ImsBody):
    Status: str
    MediaURL: str
    MediaId: str
    ProjectId: str
    JobId: str
    ErrorCode: str | None = None
    ErrorMessage: str | None = None
    UserData: str | None = None
    MasterJobId: str | None = None


class ProduceMediaComplete(ImsEvent):
    MessageBody: ProduceMediaBody


class BatchProduceMediaBody(ImsBody):
    Status: str
    JobId: str
    UserData: str | None = None


class BatchProduceMediaComplete(ImsEvent):
    MessageBody: BatchProduceMediaBody


class SmartJobBody(ImsBody):
    JobType: str
    Status: str
    JobId: str
    ModifiedTime: str
    CreateTime: str
    UserData: str | None = None


class SmartJobComplete(ImsEvent):
    MessageBody: SmartJobBody


# --- real-time media processing -------------------------------------------------------------------------


class LiveRecordFileBody(ImsBody):
    duration: float
    jobId: str
    record_id: str
    start_time: int
    stop_time: int
    uri: str


class LiveRecordFileCreated(ImsEvent):
    MessageBody: LiveRecordFileBody


class RecordErrorInfo(EventData):
    code: str
    message: str


class RecordFileInfo(EventData):
    uri: str
    start_time: int
    stop_time: int


class LiveRecordTaskStatusBody(ImsBody):
    event: str
    jobId: str
    session: str | None = None
    created: str | None = None
    error_info: RecordErrorInfo | None = None
    file_info: RecordFileInfo | None = None


class LiveRecordTaskStatus(ImsEvent):
    MessageBody: LiveRecordTaskStatusBody


class LiveSnapshotBody(ImsBody):
    SnapshotUrl: str
    # The table says jobId, the documented sample sends JobId: accept both, dump as the sample does.
    JobId: str = Field(validation_alias=AliasChoices("JobId", "jobId"), serialization_alias="JobId")
    StreamInputUrl: str
    Bucket: str
    Height: int
    Width: int
    Endpoint: str
    Object: str
    Size: int


class LiveSnapshotFileCreated(ImsEvent):
    MessageBody: LiveSnapshotBody
