"""Business keys: the ids an operator searches by, per source, read off a typed event.

A stand-in with the signature of the providers' ``business_keys`` accessor (issue 12); the journal indexes
each event under every key returned here. Values are strings, names are the provider's own.
"""

from __future__ import annotations

import json
from typing import Any

from worker.events import Event

IMS_KEYS = ("MediaId", "JobId", "ParentJobId", "TaskId", "ProjectId", "TemplateId")
RTC_KEYS = ("UserId", "SessionId", "ChannelId")


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    if text.startswith("{"):  # AI audit jobs send MediaId as '{"media": "<id>", "type": "Media"}'
        try:
            inner = json.loads(text)
        except ValueError:
            return text
        return _text(inner.get("media") or inner.get("Media")) if isinstance(inner, dict) else text
    return text or None


def _put(found: dict[str, str], name: str, value: Any) -> None:
    text = _text(value)
    if text is not None:
        found[name] = text


def _ims(data: Any, found: dict[str, str]) -> None:
    body = getattr(data, "MessageBody", None)
    if body is None:
        return
    for name in IMS_KEYS:
        _put(found, name, getattr(body, name, None))


def _rtc(data: Any, found: dict[str, str]) -> None:
    _put(found, "ChannelId", getattr(data, "ChannelID", None))
    for part in ("UserEvent", "ChannelEvent"):
        inner = getattr(data, part, None)
        if inner is not None:
            for name in RTC_KEYS:
                _put(found, name, getattr(inner, name, None))


def business_keys(event: Event) -> dict[str, str]:
    """``{name: value}`` of the business keys this event carries (empty for sources without any)."""
    found: dict[str, str] = {}
    data = event.data
    source = event.source
    if source == "ims":
        _ims(data, found)
    elif source == "live.record":
        parts = [_text(getattr(data, n, None)) for n in ("domain", "app", "stream")]
        if all(parts):
            found["stream"] = "/".join(p for p in parts if p)
    elif source == "live.caster":
        _put(found, "CasterId", getattr(data, "CasterId", None))
    elif source == "rtc":
        _rtc(data, found)
    elif source == "tencent":
        _put(found, "TaskId", getattr(data, "task_id", None))
        _put(found, "stream", getattr(data, "stream_id", None))
    return found
