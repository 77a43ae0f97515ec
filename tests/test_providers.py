"""The provider definitions: one per source, and what the rest of the service derives from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.devtools.demo import SAMPLE_SOURCES, demo_keys
from worker.events import CATALOGUE, SOURCES
from worker.logging import secret_values
from worker.providers import business_keys, dedupe_ttl, get, normalize, providers, queue_for
from worker.settings import Settings
from worker.shim import ENDPOINTS
from worker.shim.openapi import build_openapi

SAMPLES = Path(__file__).resolve().parent.parent / "worker" / "samples"


def keys_of(folder: str, name: str, index: int = 0) -> dict[str, str]:
    spec = next(s for s in providers() if s.samples == folder)
    events = normalize(spec.name, (SAMPLES / folder / name).read_bytes())
    return business_keys(events[index])


def test_one_definition_per_builtin_source() -> None:
    assert sorted(spec.name for spec in providers()[:5]) == sorted(SOURCES)
    assert ENDPOINTS == {
        "ims": "/webhooks/ims",
        "live.caster": "/webhooks/live/caster",
        "live.record": "/webhooks/live/record",
        "rtc": "/webhooks/rtc",
        "tencent": "/webhooks/tencent/css",
    }
    assert get("live-record").name == "live.record" and get("tencent/css").name == "tencent"
    with pytest.raises(KeyError, match="unknown provider 'vimeo'"):
        get("vimeo")
    for spec in providers():
        assert all(CATALOGUE[name].source == spec.name for name in spec.types)


@pytest.mark.parametrize(
    ("folder", "name", "index", "expected"),
    [
        (
            "ims",
            "ProduceMediaComplete.json",
            0,
            {
                "MediaId": "1d1cbbc46da24edd9cf11ba5d193****",
                "JobId": "8bc08c859569446ca5303ea903ca****",
                "ProjectId": "aded28bac782446a8e5a7cf86b67****",
            },
        ),
        (
            "live-record",
            "file_created.json",
            0,
            {"domain": "demo.aliyundoc.com", "app": "liveApp0001", "stream": "liveStream0001"},
        ),
        ("live-caster", "OperateCallback.json", 0, {"CasterId": "16A96B9A-F203-4EC5-8E43-CB92E68F0001"}),
        (
            "rtc",
            "eventsub.json",
            0,
            {
                "ChannelId": "888880001",
                "UserId": "803316316280001",
                "SessionId": "0dr15rrnhkz0jnvz6o8sxo00001",
            },
        ),
        ("rtc", "eventsub.json", 1, {"ChannelId": "888880001"}),  # a sibling's UserId does not leak in
        ("tencent-css", "TaskStart.json", 0, {"TaskId": "118148", "stream": "testvod"}),
    ],
)
def test_business_keys(folder: str, name: str, index: int, expected: dict[str, str]) -> None:
    assert keys_of(folder, name, index) == expected


def test_business_keys_of_every_ims_sample_are_strings() -> None:
    found: set[str] = set()
    for path in sorted((SAMPLES / "ims").glob("*.json")):
        keys = business_keys(normalize("ims", path.read_bytes())[0])
        assert all(isinstance(value, str) and value for value in keys.values()), path.name
        found |= keys.keys()
    assert found == {"MediaId", "JobId", "ParentJobId", "TaskId", "ProjectId", "TemplateId"}


def test_defaults_come_from_the_definitions_and_settings_override_one_source() -> None:
    settings = Settings(queue_routes={"rtc": "realtime"}, dedupe_ttl_seconds={"tencent": 60})
    assert [queue_for(settings, s) for s in ("ims", "live.record", "rtc", "unknown")] == [
        "ims",
        "live",
        "realtime",
        "unknown",
    ]
    assert [dedupe_ttl(settings, s) for s in ("ims", "live.record", "tencent", "nobody")] == [
        7 * 86400,
        3600,
        60,
        86400,
    ]


def test_demo_redaction_and_openapi_follow_the_definitions() -> None:
    assert SAMPLE_SOURCES == {
        "ims": "ims",
        "live-caster": "live.caster",
        "live-record": "live.record",
        "rtc": "rtc",
        "tencent-css": "tencent",
    }
    first, second = demo_keys(), demo_keys()
    assert set(first) == {
        f"IMS_WORKER_{s.auth.key_setting.upper()}" for s in providers()[:5] if s.auth.key_setting
    }
    assert all(first[name] != second[name] and len(first[name]) >= 24 for name in first), "fresh per run"
    settings = Settings(ims_callback_key="ims-key-1,ims-key-2", caster_token="caster-token-1")
    assert {"ims-key-1", "ims-key-2", "caster-token-1"} <= set(secret_values(settings))
    document = build_openapi(providers())
    body = document["paths"]["/webhooks/ims"]["post"]["requestBody"]["content"]["application/json"]
    assert len(body["schema"]["anyOf"]) == len(get("ims").types)
    # Generated from the models: the typed fields of a model appear in its schema.
    assert "MediaId" in json.dumps(document["components"]["schemas"])
    assert document["components"]["securitySchemes"]["ims"]["name"] == "X-ICE-SIGNATURE"
