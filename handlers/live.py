"""Built-in ApsaraVideo Live handlers: production studio (caster) and recording callbacks, one line each."""

from __future__ import annotations

import structlog

from handlers._fields import as_mapping, is_failure, pick, urls
from worker import Event, handler

log = structlog.get_logger(__name__)

CASTER_FIELDS = (
    "RequestId", "SceneId", "ComponentId", "ProgramId", "EpisodeId", "ShowId", "ShowName",
    "ProgressTime", "Duration", "Code", "Message",
)  # fmt: skip
RECORD_FIELDS = ("domain", "app", "stream", "event", "duration", "start_time", "stop_time")


@handler("live.caster.*")
def log_caster_event(event: Event) -> None:
    message = as_mapping(event.raw.get("EventMessage"))
    fields = {**pick(message, CASTER_FIELDS), **urls(message)}
    failed = event.type.endswith("RuntimeErrorCallback") or is_failure(error_code=message.get("Code"))
    emit = log.warning if failed else log.info
    emit("live caster event", caster_id=event.raw.get("CasterId"), failed=failed, **fields)


@handler("live.record.*")
def log_record_event(event: Event) -> None:
    fields = {**pick(event.raw, RECORD_FIELDS), **urls(event.raw)}
    log.info("live record event", **fields)
