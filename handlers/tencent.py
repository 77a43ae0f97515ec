"""Built-in Tencent CSS handler: one line per relay (pull/push) task callback with its exit code."""

from __future__ import annotations

import structlog

from handlers._fields import fields_of, is_failure, pick, urls
from worker import Event, handler

log = structlog.get_logger(__name__)

FIELDS = ("appid", "callback_event", "event_type", "stream_id", "task_id", "product_name")


@handler("tencent.*")
def log_tencent_event(event: Event) -> None:
    data = fields_of(event.data)
    detail = fields_of(getattr(event.data, "parsed_msg", None))  # ``msg`` is JSON in a string, decoded once
    fields = {**pick(data, FIELDS), **urls(data), **pick(detail, ("code", "message"))}
    failed = is_failure(error_code=detail.get("code"))
    emit = log.warning if failed else log.info
    emit("tencent relay event", failed=failed, **fields)
