"""The task argument carries the payload once: ``data`` is left out wherever it can be derived from ``raw``,
and the event the worker rebuilds equals the one published (every sample, and the awkward cases)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SAMPLES_DIR
from worker.events import Event
from worker.providers import normalize
from worker.taskmessage import encode_event

SOURCES = {"ims": "ims", "live-caster": "live.caster", "live-record": "live.record", "rtc": "rtc"}
SOURCES["tencent-css"] = "tencent"


@pytest.mark.parametrize(
    "path", sorted(SAMPLES_DIR.glob("*/*.json")), ids=lambda p: f"{p.parent.name}/{p.stem}"
)
def test_every_sample_travels_without_data_and_comes_back_equal(path: Path) -> None:
    for event in normalize(SOURCES[path.parent.name], path.read_bytes()):
        wire = json.loads(encode_event(event))
        assert "data" not in wire
        rebuilt = Event.model_validate(wire)
        assert rebuilt == event
        assert rebuilt.data.model_dump() == event.data.model_dump()


def test_a_payload_with_its_own_contents_field_keeps_data() -> None:
    # Not a fan-out: an IMS event that happens to carry a one-item "Contents" list. Deriving data the RTC way
    # would be wrong, so the message carries data.
    body = json.loads((SAMPLES_DIR / "ims" / "ProduceMediaComplete.json").read_text())
    (event,) = normalize("ims", {**body, "Contents": [{"Event": "x", "x": {"a": 1}}]})
    wire = json.loads(encode_event(event))
    assert "data" in wire
    assert Event.model_validate(wire) == event


def test_a_message_from_before_still_loads() -> None:
    (event,) = normalize("ims", (SAMPLES_DIR / "ims" / "FileUploadComplete.json").read_bytes())
    assert Event.model_validate(event.model_dump(mode="json")) == event  # with data, as older releases sent
