"""Built-in ApsaraVideo Live handlers: production studio (caster) and recording callbacks, one line each."""

from __future__ import annotations

import structlog

from handlers._fields import as_mapping, fields_of, is_failure, pick, urls
from worker import Event, handler

log = structlog.get_logger(__name__)

CASTER_FIELDS = (
    "RequestId", "SceneId", "ComponentId", "ProgramId", "EpisodeId", "ShowId", "ShowName",
    "ProgressTime", "Duration", "Code", "Message",
)  # fmt: skip
RECORD_FIELDS = ("domain", "app", "stream", "event", "duration", "start_time", "stop_time")


@handler("live.caster.*")
def log_caster_event(event: Event) -> None:
    data = fields_of(event.data)
    message = as_mapping(data.get("EventMessage"))
    fields = {**pick(message, CASTER_FIELDS), **urls(message)}
    failed = event.type.endswith("RuntimeErrorCallback") or is_failure(error_code=message.get("Code"))
    emit = log.warning if failed else log.info
    emit("live caster event", caster_id=data.get("CasterId"), failed=failed, **fields)


@handler("live.record.*")
def log_record_event(event: Event) -> None:
    data = fields_of(event.data)
    fields = {**pick(data, RECORD_FIELDS), **urls(data)}
    log.info("live record event", **fields)
