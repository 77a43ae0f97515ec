"""Built-in IMS handler: one structured line per IMS event with ids, status, URLs and error codes."""

from __future__ import annotations

import structlog

from handlers._fields import as_mapping, fields_of, is_failure, pick, urls
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
    data = fields_of(event.data)
    body = as_mapping(data.get("MessageBody"))
    fields = {**pick(body, IDS), **pick(body, DETAILS), **pick(body, ERRORS), **urls(body)}
    fields.update(pick(data, ("UserId", "EventTime")))
    failed = is_failure(body.get("Status"), body.get("ErrorCode"))
    emit = log.warning if failed else log.info
    emit("ims event", ims_event_type=data.get("EventType"), failed=failed, **fields)
