"""Built-in IMS handler: one structured line per IMS event with ids, status, URLs and error codes."""

from __future__ import annotations

import structlog

from handlers._fields import as_mapping, is_failure, pick, urls
from worker import Event, handler

log = structlog.get_logger(__name__)

IDS = (
    "MediaId",
    "JobId",
    "ParentJobId",
    "TaskId",
    "ProjectId",
    "WorkflowId",
    "TemplateId",
    "PipelineId",
    "jobId",
)
DETAILS = ("Status", "JobType", "MediaType", "Type", "event", "session", "AuditStatus", "DeleteType")
ERRORS = ("ErrorCode", "ErrorMessage", "Reason")


@handler("ims.*")
def log_ims_event(event: Event) -> None:
    body = as_mapping(event.raw.get("MessageBody"))
    fields = {**pick(body, IDS), **pick(body, DETAILS), **pick(body, ERRORS), **urls(body)}
    fields.update(pick(event.raw, ("UserId", "EventTime")))
    failed = is_failure(body.get("Status"), body.get("ErrorCode"))
    emit = log.warning if failed else log.info
    emit("ims event", ims_event_type=event.raw.get("EventType"), failed=failed, **fields)
