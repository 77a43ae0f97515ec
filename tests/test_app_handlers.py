"""The built-in handlers: one structured line per event with what an operator needs; warnings for failures."""

from __future__ import annotations

import json
from typing import Any

import pytest
from structlog.testing import capture_logs

from handlers.ims import log_ims_event
from handlers.live import log_caster_event, log_record_event
from handlers.rtc import log_rtc_event
from handlers.tencent import log_tencent_event
from handlers.unknown import warn_unknown_event
from tests.conftest import SAMPLES_DIR
from worker.demo import load_samples
from worker.events import Event
from worker.providers import normalize
from worker.registry import REGISTRY, discover


def events(source_dir: str, name: str, source: str) -> list[Event]:
    return normalize(source, (SAMPLES_DIR / source_dir / f"{name}.json").read_bytes())


def one_line(func: Any, event: Event) -> dict[str, Any]:
    with capture_logs() as logs:
        func(event)
    assert len(logs) == 1
    return dict(logs[0])


def test_every_catalogued_type_has_a_builtin_handler() -> None:
    discover()
    for sample in load_samples():
        for event in normalize(sample.source, sample.body):
            names = [s.name for s in REGISTRY.handlers_for(event.type)]
            assert any(n.startswith("handlers.") for n in names), event.type
            with capture_logs() as logs:
                for sub in REGISTRY.handlers_for(event.type):
                    if sub.name.startswith("handlers."):
                        sub.func(event)
            assert len(logs) == 1, event.type


def test_ims_success_and_failure() -> None:
    (upload,) = events("ims", "FileUploadComplete", "ims")
    line = one_line(log_ims_event, upload)
    assert line["log_level"] == "info" and line["ims_event_type"] == "FileUploadComplete"
    assert line["MediaId"] == "c321b3a0041a71eda1590674a2ce****" and line["Status"] == "Success"
    assert line["FileUrl"].startswith("http://outin-")
    raw = json.loads((SAMPLES_DIR / "ims" / "ProduceMediaComplete.json").read_text())
    raw["MessageBody"].update(Status="Failed", ErrorCode="InvalidTimeline", ErrorMessage="bad clip")
    (produce,) = normalize("ims", raw)
    failed = one_line(log_ims_event, produce)
    assert failed["log_level"] == "warning" and failed["failed"] is True
    assert failed["ErrorCode"] == "InvalidTimeline" and failed["JobId"] == raw["MessageBody"]["JobId"]


def test_provider_fields_named_like_log_keys_are_renamed() -> None:
    (paused,) = events("live-record", "record_paused", "live.record")
    line = one_line(log_record_event, paused)
    assert line["event"] == "live record event" and line["provider_event"] == "record_paused"


def test_live_caster_and_record() -> None:
    (operate,) = events("live-caster", "OperateCallback", "live.caster")
    line = one_line(log_caster_event, operate)
    assert line["log_level"] == "warning" and line["Code"] == "ImageOpenFailed"
    assert line["caster_id"] == "16A96B9A-F203-4EC5-8E43-CB92E68F0001"
    (episode,) = events("live-caster", "EpisodeGroupCallback", "live.caster")
    assert one_line(log_caster_event, episode)["log_level"] == "info"
    (created,) = events("live-record", "file_created", "live.record")
    record = one_line(log_record_event, created)
    assert record["uri"].startswith("liveApp0001/") and record["stream"] == "liveStream0001"


def test_rtc_reports_its_own_item() -> None:
    user, channel = events("rtc", "eventsub", "rtc")
    first = one_line(log_rtc_event, user)
    assert first["UserId"] == "803316316280001" and first["EventTag"] == "Publish" and first["index"] == 0
    second = one_line(log_rtc_event, channel)
    assert second["ChannelId"] == "888880001" and second["EventTag"] == "Open" and "UserId" not in second


def test_tencent_exit_code() -> None:
    (exited,) = events("tencent-css", "TaskExit", "tencent")
    line = one_line(log_tencent_event, exited)
    # The typed model keeps codes as strings (RelayMsg.code), whatever type the provider sent.
    assert (
        line["log_level"] == "warning" and line["code"] == "-22" and line["message"] == "write packet error."
    )
    (started,) = events("tencent-css", "TaskStart", "tencent")
    assert one_line(log_tencent_event, started)["log_level"] == "info"


@pytest.mark.parametrize(
    ("source", "body", "raw_type"),
    [
        ("ims", b'{"EventType": "BrandNew", "MessageBody": {}}', "BrandNew"),
        ("tencent", b'{"event_type": 999, "appid": 1}', 999),
    ],
)
def test_unknown_events_warn_with_the_raw_type(source: str, body: bytes, raw_type: object) -> None:
    (event,) = normalize(source, body)
    assert event.type == f"unknown.{source}"
    line = one_line(warn_unknown_event, event)
    assert line["log_level"] == "warning" and line["raw_type"] == raw_type
