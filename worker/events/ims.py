"""IMS callback events (MNS queue or HTTP callback): the envelope, shared sub-models, and upload, media-asset
management and workflow events. Processing events are in ``ims_media``; AI, editing and live events in
``ims_production``.

Field names are the provider's (``data.MessageBody.MediaId``). Required means documented as required, except
where the documentation's own sample omits the field: then the sample wins.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import orjson
from pydantic import BeforeValidator, TypeAdapter

from worker.events.envelope import EventData
from worker.events.jsonfield import Decoded, JsonFieldsModel, JsonText, UtcDatetime

# --- shapes of JSON carried inside strings --------------------------------------------------------------


class OssFile(EventData):
    Bucket: str | None = None
    Location: str | None = None
    Object: str | None = None


class MediaLocation(EventData):
    """IMS job ``Input`` / ``Output``: ``{"type": "OSS", "media": URL, "ossFile": {...}}``."""

    type: str | None = None
    media: str | None = None
    ossFile: OssFile | None = None


class JobTemplateConfig(EventData):
    """Snapshot / dynamic-image ``TemplateConfig``; every key optional, extras kept."""

    Count: int | None = None
    FrameType: str | None = None
    Type: str | None = None
    Height: int | None = None
    Width: int | None = None
    Interval: float | None = None
    Time: float | None = None


class WorkflowInput(EventData):
    """Workflow ``TaskInput``: ``{"Type": "Media", "Media": MediaId}``."""

    Type: str | None = None
    Media: str | None = None


class MediaRef(EventData):
    """``{"media": ..., "type": "Media"}``, how AI audit jobs name the media they reviewed."""

    media: str | None = None
    type: str | None = None


def _json_in_string(value: Any) -> Any:
    # Each MediaContent field is itself a JSON string (JSON inside JSON inside the message body).
    return orjson.loads(value) if isinstance(value, str) and value else value


class FieldChange(EventData):
    OldValue: Any = None
    NewValue: Any = None


ChangeText = Annotated[FieldChange | None, BeforeValidator(_json_in_string)]


class MediaChanges(EventData):
    """``MediaContent`` of MediaBaseChangeComplete: each present field is a JSON ``{OldValue, NewValue}``."""

    Title: ChangeText = None
    Description: ChangeText = None
    CoverURL: ChangeText = None
    CateId: ChangeText = None
    Tags: ChangeText = None


USER_DATA: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])
MEDIA_CONTENT: TypeAdapter[MediaChanges] = TypeAdapter(MediaChanges)
TASK_INPUT: TypeAdapter[WorkflowInput] = TypeAdapter(WorkflowInput)

# --- envelope -------------------------------------------------------------------------------------------


class ImsBody(JsonFieldsModel):
    """Base of every ``MessageBody``. ``UserData`` is free text, often JSON: then ``parsed_user_data``."""

    parsed_user_data: ClassVar[Decoded[dict[str, Any]]] = Decoded("UserData", USER_DATA, lenient=True)


class ImsEvent(EventData):
    """Every IMS callback: ``EventType``, ``UserId``, ``EventTime`` (UTC) and the type's ``MessageBody``."""

    EventType: str
    UserId: int
    EventTime: UtcDatetime
    MessageBody: ImsBody


# --- media asset upload ---------------------------------------------------------------------------------


class UploadBody(ImsBody):
    MediaId: str
    MediaType: str
    FileUrl: str
    Size: str
    AppId: str
    Status: str
    UserData: str | None = None


class FileUploadComplete(ImsEvent):
    MessageBody: UploadBody


class ImageUploadComplete(ImsEvent):
    MessageBody: UploadBody


class AttachedMediaUploadComplete(ImsEvent):
    MessageBody: UploadBody


class UploadByURLBody(ImsBody):
    MediaId: str
    MediaType: str
    SourceURL: str
    JobId: str
    AppId: str
    Status: str
    UserData: str | None = None


class UploadByURLComplete(ImsEvent):
    MessageBody: UploadByURLBody


class StreamBody(ImsBody):
    MediaId: str
    FileUrl: str
    Status: str
    UserData: str | None = None


class RegisterStreamComplete(ImsEvent):
    MessageBody: StreamBody


class StreamUploadComplete(ImsEvent):
    MessageBody: StreamBody


class UploadStreamByURLBody(ImsBody):
    MediaId: str
    SourceURL: str
    JobId: str
    Status: str
    UserData: str | None = None


class UploadStreamByURLComplete(ImsEvent):
    MessageBody: UploadStreamByURLBody


# --- media asset management -----------------------------------------------------------------------------


class CreateAuditBody(ImsBody):
    MediaId: str
    AuditStatus: str
    Auditor: str
    Reason: str
    Comment: str
    CreationTime: str
    Status: str


class CreateAuditComplete(ImsEvent):
    MessageBody: CreateAuditBody


class RegisterMediaBody(ImsBody):
    MediaId: str
    Status: str
    UserData: str | None = None
    ErrorCode: str | None = None
    ErrorMessage: str | None = None


class RegisterMediaComplete(ImsEvent):
    MessageBody: RegisterMediaBody


class DeleteMediaBody(ImsBody):
    MediaId: str
    Status: str
    DeleteType: str
    FileURLs: str | None = None
    ErrorCode: str | None = None
    ErrorMessage: str | None = None


class DeleteMediaComplete(ImsEvent):
    MessageBody: DeleteMediaBody


class MediaBaseChangeBody(ImsBody):
    Status: str
    MediaType: str
    MediaId: str
    OperateMode: str
    MediaContent: JsonText

    parsed_media_content: ClassVar[Decoded[MediaChanges]] = Decoded("MediaContent", MEDIA_CONTENT)


class MediaBaseChangeComplete(ImsEvent):
    MessageBody: MediaBaseChangeBody


# --- workflow -------------------------------------------------------------------------------------------


class WorkflowTaskBody(ImsBody):
    TaskInput: JsonText
    TaskId: str
    WorkflowId: str
    Status: str
    CreateTime: str

    parsed_task_input: ClassVar[Decoded[WorkflowInput]] = Decoded("TaskInput", TASK_INPUT)


class WorkflowTaskComplete(ImsEvent):
    MessageBody: WorkflowTaskBody
