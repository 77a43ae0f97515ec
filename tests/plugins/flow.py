"""Test handlers with flow-control options; every run appends ``{"h", "k", "id", "pid", "start", "end"}``
(JSON, wall-clock seconds) to ``flowtest:runs`` in Redis, so a test can check overlaps, windows and counts.

* ``keyed``   <- ims.FileUploadComplete,  key="MediaId": one run at a time per MediaId;
* ``rated``   <- ims.ImageUploadComplete, rate="20/s";
* ``capped``  <- ims.AttachedMediaUploadComplete, concurrency=3;
* ``newest``  <- ims.UploadByURLComplete, key="MediaId", stale="skip".

``flowtest:sleep`` (seconds, default 0.02) is how long each run sleeps; an event whose ``UserData`` is
``"hang"`` writes its pid to ``flowtest:hang_pid`` and sleeps 600 s on its first run (to be killed while it
holds its key).
"""

from __future__ import annotations

import json
import os
import time

import redis

from worker import Event, handler
from worker.settings import load_settings

RUNS = "flowtest:runs"
_client: tuple[int, redis.Redis] | None = None


def client() -> redis.Redis:
    global _client  # noqa: PLW0603 - one connection per (forked) process
    if _client is None or _client[0] != os.getpid():
        _client = (os.getpid(), redis.Redis.from_url(load_settings().effective_redis_url))
    return _client[1]


def _run(name: str, event: Event, key: str) -> None:
    r = client()
    start = time.time()
    hang = event.raw.get("MessageBody", {}).get("UserData") == "hang"
    if hang and r.set(f"flowtest:hung:{event.id}", 1, nx=True):  # only its first run hangs
        r.set("flowtest:hang_pid", os.getpid())
        time.sleep(600)
    time.sleep(float(r.get("flowtest:sleep") or 0.02))
    record = {"h": name, "k": key, "id": event.id, "pid": os.getpid(), "start": start, "end": time.time()}
    r.rpush(RUNS, json.dumps(record))


def _media(event: Event) -> str:
    return str(event.raw["MessageBody"]["MediaId"])


@handler("ims.FileUploadComplete", key="MediaId")
def keyed(event: Event) -> None:
    _run("keyed", event, _media(event))


@handler("ims.ImageUploadComplete", rate="20/s")
def rated(event: Event) -> None:
    _run("rated", event, "")


@handler("ims.AttachedMediaUploadComplete", concurrency=3)
def capped(event: Event) -> None:
    _run("capped", event, "")


@handler("ims.UploadByURLComplete", key="MediaId", stale="skip")
def newest(event: Event) -> None:
    _run("newest", event, _media(event))
