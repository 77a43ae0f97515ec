"""The catalogue of normalized event types: type name -> source, typed model, description, deprecation.

Descriptions are the providers' own one-line summaries. ``unknown.<source>`` is catalogued too: anything a
source sends that is not recognised is routed there with the generic ``EventData`` (raw fields kept).
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.events import ims, ims_media, ims_production, live_caster, live_record, rtc, tencent
from worker.events.envelope import EventData

SOURCES: tuple[str, ...] = ("ims", "live.caster", "live.record", "rtc", "tencent")


ModelType = type[EventData]


@dataclass(frozen=True)
class EventSpec:
    type: str
    source: str
    model: ModelType
    description: str
    deprecated: bool = False


_DEPRECATION = " (deprecated by the provider from 2025-12-31; use MediaConvert* events)"

_IMS: dict[str, tuple[type[EventData], str]] = {
    # media asset upload
    "FileUploadComplete": (ims.FileUploadComplete, "An audio or video file is uploaded."),
    "UploadByURLComplete": (ims.UploadByURLComplete, "A file is uploaded from a URL."),
    "ImageUploadComplete": (ims.ImageUploadComplete, "An image is uploaded."),
    "AttachedMediaUploadComplete": (ims.AttachedMediaUploadComplete, "An auxiliary media asset is uploaded."),
    "RegisterStreamComplete": (ims.RegisterStreamComplete, "A media stream is registered."),
    "StreamUploadComplete": (ims.StreamUploadComplete, "A media stream is uploaded."),
    "UploadStreamByURLComplete": (ims.UploadStreamByURLComplete, "A media stream is uploaded from a URL."),
    # media asset management
    "CreateAuditComplete": (ims.CreateAuditComplete, "A manual review is complete."),
    "RegisterMediaComplete": (ims.RegisterMediaComplete, "A media asset is registered."),
    "DeleteMediaComplete": (ims.DeleteMediaComplete, "A media asset is deleted."),
    "MediaBaseChangeComplete": (ims.MediaBaseChangeComplete, "A media asset's basic information is updated."),
    # workflow
    "WorkflowTaskComplete": (ims.WorkflowTaskComplete, "A workflow task is complete."),
    # ApsaraVideo VOD media processing
    "VideoAnalysisComplete": (ims_media.VideoAnalysisComplete, "Audio or video analysis is complete."),
    "SnapshotComplete": (ims_media.SnapshotComplete, "Video snapshotting is complete."),
    "DynamicImageComplete": (ims_media.DynamicImageComplete, "A dynamic image is generated."),
    "TranscodeComplete": (ims_media.TranscodeComplete, "A transcoding subtask is complete" + _DEPRECATION),
    "TranscodeParentComplete": (
        ims_media.TranscodeParentComplete,
        "The parent transcoding task is complete" + _DEPRECATION,
    ),
    "MediaConvertComplete": (ims_media.MediaConvertComplete, "A media transcoding job is complete."),
    "MediaConvertOutputGroupComplete": (
        ims_media.MediaConvertOutputGroupComplete,
        "A media transcoding output group is complete (also sent as "
        "ApsaraVideoForMediaProcessingOutputGroupComplete).",
    ),
    "MediaConvertOutputComplete": (
        ims_media.MediaConvertOutputComplete,
        "A media transcoding output is complete.",
    ),
    # video AI
    "AIMediaAuditComplete": (ims_production.AIMediaAuditComplete, "An AI-powered review is complete."),
    "AIProduceComplete": (ims_production.AIProduceComplete, "An AI-powered production task is complete."),
    "MediaAiAnalysisComplete": (
        ims_production.MediaAiAnalysisComplete,
        "AI analysis of a media asset is complete and the results are saved to the library.",
    ),
    # intelligent editing
    "ProduceMediaComplete": (ims_production.ProduceMediaComplete, "Media production is complete."),
    "BatchProduceMediaComplete": (
        ims_production.BatchProduceMediaComplete,
        "A batch intelligent video production task is complete.",
    ),
    "SmartJobComplete": (ims_production.SmartJobComplete, "An intelligent task is complete."),
    # real-time media processing
    "LiveRecordFileCreated": (ims_production.LiveRecordFileCreated, "A live recording file is generated."),
    "LiveRecordTaskStatus": (
        ims_production.LiveRecordTaskStatus,
        "A live recording task's status is updated.",
    ),
    "LiveSnapshotFileCreated": (
        ims_production.LiveSnapshotFileCreated,
        "A snapshot file is created during live streaming.",
    ),
}

IMS_TYPES: tuple[str, ...] = tuple(_IMS)

# Other names IMS sends for a catalogued type: EventType value -> catalogued name.
IMS_ALIASES: dict[str, str] = {
    "ApsaraVideoForMediaProcessingOutputGroupComplete": "MediaConvertOutputGroupComplete",
}

_OTHERS: dict[str, tuple[type[EventData], str]] = {
    "live.caster.OperateCallback": (live_caster.OperateCallback, "Production studio: an operation's result."),
    "live.caster.RuntimeErrorCallback": (
        live_caster.RuntimeErrorCallback,
        "Production studio: a runtime error (stream interrupted, source failed...).",
    ),
    "live.caster.EpisodeGroupCallback": (
        live_caster.EpisodeGroupCallback,
        "Production studio: carousel playback moved to an episode.",
    ),
    "live.caster.ShowListDTSCallback": (
        live_caster.ShowListDTSCallback,
        "Production studio: playback progress of the current episode in playlist mode.",
    ),
    "live.record.record_started": (live_record.RecordStarted, "Live recording: recording is started."),
    "live.record.record_paused": (live_record.RecordPaused, "Live recording: recording is paused."),
    "live.record.record_resumed": (live_record.RecordResumed, "Live recording: recording is resumed."),
    "live.record.file_created": (
        live_record.FileCreated,
        "Live recording: a recording file is generated (name, start and end time, duration).",
    ),
    "tencent.relay.TaskStart": (tencent.TaskStart, "Tencent CSS relay: the relay task started."),
    "tencent.relay.VodSourceFileStart": (
        tencent.VodSourceFileStart,
        "Tencent CSS relay: an on-demand source file started playing.",
    ),
    "tencent.relay.VodSourceFileFinish": (
        tencent.VodSourceFileFinish,
        "Tencent CSS relay: an on-demand source file finished playing.",
    ),
    "tencent.relay.TaskExit": (tencent.TaskExit, "Tencent CSS relay: the relay task stopped (code, reason)."),
    "rtc.UserEvent": (
        rtc.UserEvent,
        "RTC: a user joined, left, published, unpublished or changed role in a channel.",
    ),
    "rtc.ChannelEvent": (rtc.ChannelEvent, "RTC: a channel was opened or closed."),
}


def _source_of(event_type: str) -> str:
    return next(s for s in sorted(SOURCES, key=len, reverse=True) if event_type.startswith(s + "."))


_specs: list[EventSpec] = [
    EventSpec(f"ims.{name}", "ims", model, text, deprecated=name.startswith("Transcode"))
    for name, (model, text) in _IMS.items()
]
_specs += [EventSpec(name, _source_of(name), model, text) for name, (model, text) in _OTHERS.items()]
_specs += [
    EventSpec(f"unknown.{s}", s, EventData, f"Anything {s} sends that is not recognised (raw fields kept).")
    for s in SOURCES
]

CATALOGUE: dict[str, EventSpec] = {spec.type: spec for spec in _specs}


def model_for(event_type: str) -> type[EventData]:
    """The typed model of ``event_type``; ``EventData`` (extras kept) for anything not catalogued."""
    spec = CATALOGUE.get(event_type)
    return spec.model if spec else EventData


def register_source(source: str, types: dict[str, tuple[ModelType, str]]) -> None:
    """Catalogue the event types of a source defined outside this package (``worker.providers``).

    ``types`` maps full type names (``<source>.<Name>``) to (model, description); ``unknown.<source>`` is
    added too. Registering the same types again is a no-op; a name already taken by another model is refused.
    """
    entries = [EventSpec(name, source, model, text) for name, (model, text) in types.items()]
    entries.append(
        EventSpec(f"unknown.{source}", source, EventData, f"Anything {source} sends that is not recognised.")
    )
    for entry in entries:
        if not entry.type.startswith((source + ".", "unknown.")):
            raise ValueError(f"event type {entry.type!r} must start with its source {source!r}")
        existing = CATALOGUE.get(entry.type)
        if existing is not None and (existing.model is not entry.model or existing.source != source):
            raise ValueError(f"event type {entry.type!r} is already catalogued for {existing.source!r}")
    for entry in entries:
        CATALOGUE.setdefault(entry.type, entry)
