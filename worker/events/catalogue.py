"""The catalogue of normalized event types: type name -> source, typed model, description, deprecation.

PROVISIONAL: every model is the generic ``EventData`` until the per-source model modules land; the
type names and the public functions here are final.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.events.envelope import EventData

SOURCES: tuple[str, ...] = ("ims", "live.caster", "live.record", "rtc", "tencent")


@dataclass(frozen=True)
class EventSpec:
    type: str
    source: str
    model: type[EventData]
    description: str
    deprecated: bool = False


IMS_TYPES = (
    "AIMediaAuditComplete AIProduceComplete AttachedMediaUploadComplete BatchProduceMediaComplete "
    "CreateAuditComplete DeleteMediaComplete DynamicImageComplete FileUploadComplete ImageUploadComplete "
    "LiveRecordFileCreated LiveRecordTaskStatus LiveSnapshotFileCreated MediaAiAnalysisComplete "
    "MediaBaseChangeComplete MediaConvertComplete MediaConvertOutputComplete MediaConvertOutputGroupComplete "
    "ProduceMediaComplete RegisterMediaComplete RegisterStreamComplete SmartJobComplete SnapshotComplete "
    "StreamUploadComplete TranscodeComplete TranscodeParentComplete UploadByURLComplete "
    "UploadStreamByURLComplete VideoAnalysisComplete WorkflowTaskComplete"
).split()

_specs: list[EventSpec] = []
_specs += [EventSpec(f"ims.{t}", "ims", EventData, t, t.startswith("Transcode")) for t in IMS_TYPES]
_specs += [
    EventSpec(f"live.caster.{t}", "live.caster", EventData, t)
    for t in ("OperateCallback", "RuntimeErrorCallback", "EpisodeGroupCallback", "ShowListDTSCallback")
]
_specs += [
    EventSpec(f"live.record.{t}", "live.record", EventData, t)
    for t in ("record_started", "record_paused", "record_resumed", "file_created")
]
_specs += [
    EventSpec(f"tencent.relay.{t}", "tencent", EventData, t)
    for t in ("TaskStart", "VodSourceFileStart", "VodSourceFileFinish", "TaskExit")
]
_specs += [EventSpec(f"rtc.{t}", "rtc", EventData, t) for t in ("UserEvent", "ChannelEvent")]
_specs += [EventSpec(f"unknown.{s}", s, EventData, f"unrecognised {s} event") for s in SOURCES]

CATALOGUE: dict[str, EventSpec] = {spec.type: spec for spec in _specs}


def model_for(event_type: str) -> type[EventData]:
    """The typed model of ``event_type``; ``EventData`` (extras kept) for anything not catalogued."""
    spec = CATALOGUE.get(event_type)
    return spec.model if spec else EventData
