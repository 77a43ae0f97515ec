"""The business keys the journal indexes per source (``worker.providers``), read off the shipped samples:
what ``trace`` and ``replay --key`` search by."""

from __future__ import annotations

import json

from tests.conftest import SAMPLES_DIR
from worker.journal.config import index_blob, received_blob
from worker.providers import business_keys, normalize


def keys_of(directory: str, name: str, source: str) -> list[dict[str, str]]:
    raw = (SAMPLES_DIR / directory / f"{name}.json").read_bytes()
    return [business_keys(e) for e in normalize(source, raw)]


def test_each_source_declares_the_keys_an_operator_searches_by() -> None:
    assert keys_of("ims", "ProduceMediaComplete", "ims") == [
        {
            "MediaId": "1d1cbbc46da24edd9cf11ba5d193****",
            "JobId": "8bc08c859569446ca5303ea903ca****",
            "ProjectId": "aded28bac782446a8e5a7cf86b67****",
        }
    ]
    # AI audit names its media as '{"media": ..., "type": "Media"}': the journal indexes the id, not the JSON.
    (audit,) = normalize("ims", (SAMPLES_DIR / "ims" / "AIMediaAuditComplete.json").read_bytes())
    assert ["MediaId", "02389c00031e71edbfdc90a58843****"] in json.loads(index_blob(audit))
    assert keys_of("live-record", "file_created", "live.record")[0] == {
        "domain": "demo.aliyundoc.com",
        "app": "liveApp0001",
        "stream": "liveStream0001",
    }
    assert keys_of("live-caster", "OperateCallback", "live.caster")[0].keys() == {"CasterId"}
    user, channel = keys_of("rtc", "eventsub", "rtc")
    assert user.keys() == {"ChannelId", "UserId", "SessionId"} and channel.keys() == {"ChannelId"}
    assert keys_of("tencent-css", "TaskStart", "tencent") == [{"TaskId": "118148", "stream": "testvod"}]


def test_journal_lines_are_single_lines_whatever_the_payload_holds() -> None:
    (event,) = normalize("ims", (SAMPLES_DIR / "ims" / "FileUploadComplete.json").read_bytes())
    odd = event.model_copy(update={"id": event.id, "source": 'ims"\n'})
    event_id, entry = received_blob(odd, 1).split("\n")
    assert event_id == event.id and '"src":"ims\\"\\n"' in entry
    assert all(len(pair) == 2 for pair in json.loads(index_blob(event)))
