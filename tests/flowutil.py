"""Events for the flow-control tests: IMS upload events with a chosen MediaId, distinct ids and times."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from worker.events import Event
from worker.providers import normalize

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def upload_event(
    kind: str, media_id: str, n: int, *, seconds: float | None = None, user_data: str | None = None
) -> Event:
    """``ims.<kind>`` for ``media_id``; ``n`` makes the id unique; ``occurred_at`` is ``seconds`` after T0."""
    when = T0 + timedelta(seconds=n if seconds is None else seconds)
    body = {
        "Status": "Success",
        "FileUrl": "https://example.com/f.mp4",
        "MediaId": media_id,
        "AppId": "app-1",
    }
    body |= {"Size": "1", "MediaType": "video", "UserData": user_data or f"n={n}"}
    if kind == "UploadByURLComplete":
        body = {k: v for k, v in body.items() if k not in ("FileUrl", "Size")}
        body |= {"SourceURL": "https://example.com/f.mp4", "JobId": f"job-{n}"}
    raw = {
        "EventType": kind,
        "UserId": 1,
        "EventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "MessageBody": body,
    }
    (event,) = normalize("ims", json.dumps(raw).encode())
    return event
