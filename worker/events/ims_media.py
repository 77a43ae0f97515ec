"""IMS callback events for media processing (analysis, snapshots, transcoding, media conversion).

The envelope and the shapes shared with other events are in ``ims``; video AI, intelligent editing and
real-time media processing events are in ``ims_production``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, TypeAdapter

from worker.events.envelope import EventData
from worker.events.ims import ImsBody, ImsEvent, JobTemplateConfig, MediaLocation
from worker.events.jsonfield import Decoded, JsonText

LOCATION: TypeAdapter[MediaLocation] = TypeAdapter(MediaLocation)
TEMPLATE: TypeAdapter[JobTemplateConfig] = TypeAdapter(JobTemplateConfig)

# --- ApsaraVideo VOD media processing -------------------------------------------------------------------


class MediaMetaInfo(EventData):
    Duration: str
    Height: str
    Width: str
    Bitrate: str
    Size: str
    Fps: float


class VideoAnalysisBody(ImsBody):
    MediaId: str
    FileUrl: str
    Status: str
    MetaInfo: MediaMetaInfo
    UserData: str | None = None


class VideoAnalysisComplete(ImsEvent):
    MessageBody: VideoAnalysisBody


class ImageJobBody(ImsBody):
    """Shared by snapshot and dynamic-image jobs; ``Input``/``Output``/``TemplateConfig`` are JSON strings."""

    JobId: str
    TriggerSource: str
    Name: str
    Input: JsonText
    Output: JsonText
    TemplateConfig: JsonText
    TemplateId: str
    SubmitTime: str
    FinishTime: str
    Status: str
    PipelineId: str | None = None
    UserData: str | None = None
    ErrorCode: str | None = None
    ErrorMessage: str | None = None

    parsed_input: ClassVar[Decoded[MediaLocation]] = Decoded("Input", LOCATION)
    parsed_output: ClassVar[Decoded[MediaLocation]] = Decoded("Output", LOCATION)
    parsed_template_config: ClassVar[Decoded[JobTemplateConfig]] = Decoded("TemplateConfig", TEMPLATE)


class SnapshotBody(ImageJobBody):
    Type: str
    Count: int


class SnapshotComplete(ImsEvent):
    MessageBody: SnapshotBody


class DynamicImageComplete(ImsEvent):
    MessageBody: ImageJobBody


class StreamInfo(EventData):
    """One entry of a FileMeta stream list (ffprobe-style keys, which vary by stream kind; all kept)."""

    index: str | None = None
    duration: str | None = None


class FileBasicInfo(EventData):
    fileName: str | None = None
    fileUrl: str | None = None
    fileSize: str | None = None
    duration: str | None = None
    width: str | None = None
    height: str | None = None
    bitrate: str | None = None
    formatName: str | None = None
    fileStatus: str | None = None
    fileType: str | None = None
    region: str | None = None


class FileMeta(EventData):
    """``OutFileMeta``: see GetTranscodeJob; extras kept."""

    fileBasicInfo: FileBasicInfo | None = None
    videoStreamInfoList: list[StreamInfo] = Field(default_factory=list)
    audioStreamInfoList: list[StreamInfo] = Field(default_factory=list)
    subtitleStreamInfoList: list[StreamInfo] = Field(default_factory=list)
    playStreamInfo: dict[str, Any] | None = None


class TranscodeBody(ImsBody):
    ParentJobId: str
    JobId: str
    TriggerSource: str
    OutFileMeta: FileMeta
    OutputUrl: str
    FinishTime: str
    Status: str
    UserData: str | None = None
    ErrorCode: str | None = None
    ErrorMessage: str | None = None


class TranscodeComplete(ImsEvent):
    """Deprecated by the provider (2025-12-31); still parsed."""

    MessageBody: TranscodeBody


class TranscodeJobSummary(EventData):
    JobId: str | None = None
    Status: str | None = None
    OutputUrl: str | None = None


class TranscodeParentBody(ImsBody):
    ParentJobId: str
    Jobs: list[TranscodeJobSummary]
    TriggerSource: str
    Name: str
    FinishTime: str
    Status: str
    UserData: str | None = None


class TranscodeParentComplete(ImsEvent):
    """Deprecated by the provider (2025-12-31); still parsed."""

    MessageBody: TranscodeParentBody


class MediaConvertBody(ImsBody):
    JobId: str
    Status: str
    TriggerSource: str
    FinishTime: str
    UserData: str | None = None  # documented required, absent from the documented sample


class MediaConvertComplete(ImsEvent):
    MessageBody: MediaConvertBody


class MediaConvertOutputGroupBody(ImsBody):
    TriggerSource: str
    JobId: str
    TaskId: str
    Name: str
    Status: str
    UserData: str | None = None


class MediaConvertOutputGroupComplete(ImsEvent):
    """Also sent as ``ApsaraVideoForMediaProcessingOutputGroupComplete``; EventType keeps the name sent."""

    MessageBody: MediaConvertOutputGroupBody


class MediaConvertOutputBody(MediaConvertOutputGroupBody):
    MediaId: str | None = None
    OutputUrl: str | None = None
    OutFileMeta: FileMeta | None = None


class MediaConvertOutputComplete(ImsEvent):
    MessageBody: MediaConvertOutputBody
