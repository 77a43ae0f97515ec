"""normalize(): identification, the exact InvalidPayload reasons, ids, times, coercions, unknown types."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from worker.errors import InvalidPayload
from worker.events import EventData, Transport
from worker.events.ids import RECEIPT_BUCKET_SECONDS
from worker.providers import detect_source, normalize

SAMPLES = Path(__file__).resolve().parent.parent / "worker" / "samples"
NOON = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    return loaded


def rejects(source: str, raw: Any, *fragments: str) -> str:
    with pytest.raises(InvalidPayload) as caught:
        normalize(source, raw)
    for fragment in fragments:
        assert fragment in str(caught.value)
    return str(caught.value)


# --- not a JSON object ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "payload is not valid JSON"),
        ("", "payload is empty"),
        (b"   ", "payload is not valid JSON"),
        (b"[1, 2]", "must be a JSON object, got an array"),
        ('"text"', "must be a JSON object, got a string"),
        (b"null", "must be a JSON object, got null"),
        (b"42", "must be a JSON object, got a number"),
        (b"\xff\xfe", "payload is not valid JSON"),
        (b'{"a": NaN}', "payload is not valid JSON"),
    ],
)
def test_what_is_not_a_json_object_is_rejected_with_the_reason(raw: Any, reason: str) -> None:
    rejects("ims", raw, reason)


def test_a_mapping_that_is_not_json_data_is_rejected() -> None:
    rejects("ims", {"EventType": "X", "when": object()}, "not representable as JSON")
    rejects("ims", {1: "x"}, "not representable as JSON")


def test_neither_text_nor_mapping_is_rejected() -> None:
    rejects("ims", 42, "must be JSON text or a mapping, not int")


def test_an_unknown_source_is_rejected() -> None:
    rejects("youtube", b"{}", "unknown source 'youtube'", "ims, live.caster")


# --- identification ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "payload", "reason"),
    [
        ("ims", {"MessageBody": {}}, "missing field EventType"),
        ("ims", {"EventType": 7, "MessageBody": {}}, "field EventType must be a non-empty string"),
        ("ims", {"EventType": " ", "MessageBody": {}}, "field EventType must be a non-empty string"),
        ("live.caster", {"CasterId": "c", "EventMessage": {}}, "missing field EventType"),
        (
            "live.record",
            {"domain": "d", "app": "a", "stream": "s"},
            "missing field event (recording status) or uri",
        ),
        ("live.record", {"domain": "d", "app": "a", "stream": "s", "event": None}, "missing field event"),
        ("tencent", {"callback_event": "TaskStart"}, "missing field event_type"),
        ("tencent", {"event_type": 314}, "missing field callback_event"),
        ("rtc", {"MsgId": "m"}, "missing field Contents"),
        ("rtc", {"Contents": {"Event": "UserEvent"}}, "field Contents must be a list"),
        ("rtc", {"Contents": []}, "field Contents is empty"),
        ("rtc", {"Contents": ["UserEvent"]}, "Contents[0] must be an object"),
        (
            "rtc",
            {
                "Contents": [
                    {"Event": "ChannelEvent", "ChannelEvent": {"EventTag": "Open", "Timestamp": 1}},
                    {},
                ]
            },
            "missing field Contents[1].Event",
        ),
    ],
)
def test_missing_type_fields_are_named(source: str, payload: dict[str, Any], reason: str) -> None:
    rejects(source, payload, reason)


@pytest.mark.parametrize(
    ("source", "payload", "event_type"),
    [
        ("ims", {"EventType": "BrandNewComplete", "UserId": 1, "MessageBody": {"X": 1}}, "unknown.ims"),
        ("live.caster", {"EventType": "NewCallback", "EventMessage": {}}, "unknown.live.caster"),
        (
            "live.record",
            {"domain": "d", "app": "a", "stream": "s", "event": "record_stopped"},
            "unknown.live.record",
        ),
        ("tencent", {"event_type": 1, "stream_id": "s"}, "unknown.tencent"),
        ("tencent", {"event_type": 314, "callback_event": "TaskPaused", "msg": "{}"}, "unknown.tencent"),
    ],
)
def test_unrecognised_types_are_kept_as_unknown(
    source: str, payload: dict[str, Any], event_type: str
) -> None:
    [event] = normalize(source, payload)
    assert event.type == event_type
    assert type(event.data) is EventData
    assert event.raw == payload
    assert event.data.model_dump() == payload  # every field kept


def test_an_unknown_rtc_item_is_kept_beside_known_ones() -> None:
    message = sample("rtc/eventsub.json")
    message["Contents"].append({"Event": "StreamEvent", "StreamEvent": {"Tag": "x"}})
    events = normalize("rtc", message)
    assert [e.type for e in events] == ["rtc.UserEvent", "rtc.ChannelEvent", "unknown.rtc"]
    assert events[2].data.model_dump()["StreamEvent"] == {"Tag": "x"}
    assert events[2].index == 2


def test_the_documented_alias_is_the_same_event_type() -> None:
    payload = sample("ims/MediaConvertOutputGroupComplete.json")
    payload["EventType"] = "ApsaraVideoForMediaProcessingOutputGroupComplete"
    [event] = normalize("ims", payload)
    assert event.type == "ims.MediaConvertOutputGroupComplete"
    assert event.data.model_dump()["EventType"] == "ApsaraVideoForMediaProcessingOutputGroupComplete"


def test_tencent_event_type_may_be_a_string() -> None:
    payload = sample("tencent-css/TaskStart.json") | {"event_type": "314"}
    assert normalize("tencent", payload)[0].type == "tencent.relay.TaskStart"


# --- validation of known types ----------------------------------------------------------------------------


def test_a_missing_required_field_names_its_path() -> None:
    payload = sample("ims/FileUploadComplete.json")
    del payload["MessageBody"]["MediaId"]
    message = rejects("ims", payload, "ims.FileUploadComplete", "MessageBody.MediaId: Field required")
    assert "c321b3a0" not in message  # payload values are not echoed


def test_a_wrongly_typed_field_names_its_path() -> None:
    payload = sample("rtc/eventsub.json")
    payload["Contents"][0]["UserEvent"]["Role"] = "streamer"
    rejects("rtc", payload, "rtc.UserEvent", "UserEvent.Role: Input should be a valid integer")


def test_many_errors_are_summarized() -> None:
    payload = sample("ims/SnapshotComplete.json") | {"MessageBody": {}}
    rejects("ims", payload, "MessageBody.JobId: Field required", "and 7 more")


def test_json_in_a_string_must_be_json() -> None:
    payload = sample("ims/SnapshotComplete.json")
    payload["MessageBody"]["Input"] = "{not json"
    rejects("ims", payload, "ims.SnapshotComplete", "MessageBody: Value error, Input must be JSON text")
    tencent = sample("tencent-css/TaskExit.json") | {"source_urls": '{"a": 1}'}
    rejects("tencent", tencent, "source_urls must be JSON text of the documented shape")


def test_user_data_that_is_not_json_is_just_text() -> None:
    payload = sample("ims/ProduceMediaComplete.json")
    payload["MessageBody"]["UserData"] = "order 42"
    [event] = normalize("ims", payload)
    body = event.data.MessageBody  # type: ignore[attr-defined]
    assert (body.UserData, body.parsed_user_data) == ("order 42", None)


def test_a_json_field_sent_as_an_object_is_kept_as_a_string() -> None:
    payload = sample("ims/WorkflowTaskComplete.json")
    payload["MessageBody"]["TaskInput"] = {"Type": "Media", "Media": "m1"}
    [event] = normalize("ims", payload)
    body = event.data.MessageBody  # type: ignore[attr-defined]
    assert body.TaskInput == '{"Type":"Media","Media":"m1"}'
    assert body.parsed_task_input.Media == "m1"


def test_numbers_and_strings_are_coerced_where_docs_and_senders_disagree() -> None:
    payload = sample("ims/FileUploadComplete.json")
    payload["MessageBody"]["Size"] = 5510872
    payload["UserId"] = "1833220977560785"
    [event] = normalize("ims", payload)
    assert event.data.MessageBody.Size == "5510872"  # type: ignore[attr-defined]
    assert event.data.UserId == 1833220977560785  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("sent", "parsed"), [("1,2,3", [1, 2, 3]), ("", []), (2, [2]), ([1, 3], [1, 3]), ("2", [2])]
)
def test_current_medias_accepts_every_shape_seen(sent: Any, parsed: list[int]) -> None:
    payload = sample("rtc/eventsub.json")
    payload["Contents"][0]["UserEvent"]["CurrentMedias"] = sent
    assert normalize("rtc", payload)[0].data.UserEvent.CurrentMedias == parsed  # type: ignore[attr-defined]


def test_live_snapshot_job_id_accepts_the_documented_spelling() -> None:
    payload = sample("ims/LiveSnapshotFileCreated.json")
    payload["MessageBody"]["jobId"] = payload["MessageBody"].pop("JobId")
    [event] = normalize("ims", payload)
    assert event.data.MessageBody.JobId == "cef3de8c-b02c-4462-ad02-****"  # type: ignore[attr-defined]


def test_extra_fields_are_kept() -> None:
    payload = sample("ims/FileUploadComplete.json")
    payload["MessageBody"]["NewField"] = {"x": 1}
    [event] = normalize("ims", payload)
    assert event.data.MessageBody.NewField == {"x": 1}  # type: ignore[attr-defined]


# --- ids, times, transport --------------------------------------------------------------------------------


def test_the_id_does_not_depend_on_formatting_transport_or_receipt_time() -> None:
    raw = (SAMPLES / "ims/FileUploadComplete.json").read_bytes()
    compact = json.dumps(dict(reversed(json.loads(raw).items())), separators=(",", ":"))
    mns = Transport(kind="mns", queue="ims-events", message_id="M1", dequeue_count=3)
    first = normalize("ims", raw, received_at=NOON)[0]
    again = normalize("ims", compact, transport=mns, received_at=NOON + timedelta(days=3))[0]
    assert first.id == again.id
    assert again.transport == mns
    assert first.transport.kind == "http"


def test_different_events_have_different_ids() -> None:
    ids = {normalize(detect_source(p.read_bytes()), p.read_bytes())[0].id for p in SAMPLES.glob("*/*.json")}
    assert len(ids) == len(list(SAMPLES.glob("*/*.json")))


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("live.record", "live-record/record_started.json"),
        ("live.caster", "live-caster/RuntimeErrorCallback.json"),
        ("tencent", "tencent-css/TaskStart.json"),
    ],
)
def test_timeless_payloads_are_duplicates_only_within_the_retry_horizon(source: str, name: str) -> None:
    payload = sample(name)
    today = normalize(source, payload, received_at=NOON)[0].id
    retry = normalize(source, payload, received_at=NOON + timedelta(seconds=RECEIPT_BUCKET_SECONDS - 1))[0].id
    tomorrow = normalize(source, payload, received_at=NOON + timedelta(days=1))[0].id
    assert today == retry
    assert tomorrow != today


def test_payloads_with_their_own_time_or_id_ignore_the_receipt_time() -> None:
    for source, name in [
        ("live.record", "live-record/file_created.json"),
        ("live.caster", "live-caster/OperateCallback.json"),
    ]:
        payload = sample(name)
        ids = {normalize(source, payload, received_at=NOON + timedelta(days=d))[0].id for d in (0, 1)}
        assert len(ids) == 1


def test_tencent_signature_fields_do_not_change_the_id() -> None:
    payload = sample("tencent-css/VodSourceFileStart.json")
    one = normalize("tencent", payload | {"t": 1700000000, "sign": "a" * 32}, received_at=NOON)[0]
    two = normalize("tencent", payload | {"t": 1700000060, "sign": "b" * 32}, received_at=NOON)[0]
    assert one.id == two.id
    assert one.raw["sign"] == "a" * 32  # still in raw


def test_rtc_without_msg_id_falls_back_to_a_digest_per_item() -> None:
    payload = sample("rtc/eventsub.json")
    del payload["MsgId"]
    user, channel = normalize("rtc", payload, received_at=NOON)
    assert user.id.startswith("rtc:") and user.id.endswith(":0") and channel.id.endswith(":1")
    assert user.id[:-2] == channel.id[:-2]
    assert user.id == normalize("rtc", payload, received_at=NOON + timedelta(days=1))[0].id


def test_times_are_utc() -> None:
    payload = sample("ims/FileUploadComplete.json") | {"EventTime": "2022-07-15T16:48:14+08:00"}
    [event] = normalize("ims", payload, received_at=datetime(2024, 1, 1, 8, 0))  # naive: taken as UTC
    assert event.occurred_at == datetime(2022, 7, 15, 8, 48, 14, tzinfo=UTC)
    assert event.data.EventTime == event.occurred_at  # type: ignore[attr-defined]
    assert event.received_at == datetime(2024, 1, 1, 8, 0, tzinfo=UTC)
    assert normalize("ims", sample("ims/FileUploadComplete.json"))[0].received_at.tzinfo is UTC


def test_tencent_nonzero_task_times_are_the_event_time() -> None:
    payload = sample("tencent-css/TaskStart.json") | {"msg": '{"task_start_time": 1700000000123}'}
    assert normalize("tencent", payload)[0].occurred_at == datetime(
        2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC
    )


def test_an_absurd_timestamp_gives_no_time_rather_than_an_error() -> None:
    payload = sample("rtc/eventsub.json")
    payload["Contents"][1]["ChannelEvent"]["Timestamp"] = 1e300
    assert normalize("rtc", payload)[1].occurred_at is None


@pytest.mark.parametrize("depth", [300, 900, 5000])
@pytest.mark.parametrize("event_type", ["Unknown", "FileUploadComplete"])
def test_deep_nesting_is_an_invalid_payload(depth: int, event_type: str) -> None:
    nested = '{"x": ' * depth + "{}" + "}" * depth
    text = f'{{"EventType": "{event_type}", "MessageBody": {nested}}}'
    if depth >= 1024:
        reason = "depth limit exceeded"  # the JSON parser's own limit
    elif event_type == "Unknown":
        reason = "nested too deeply"  # kept as an unknown event, then too deep to digest
    else:
        reason = "MessageBody.MediaId: Field required"  # validation fails before depth matters
    rejects("ims", text, reason)
    deep: Any = {}
    for _ in range(depth):
        deep = {"x": deep}
    rejects("ims", {"EventType": event_type, "MessageBody": deep}, "payload is not representable as JSON")


# --- detect_source ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "source"),
    [
        ({"EventType": "X", "MessageBody": {}}, "ims"),
        ({"EventType": "X"}, "ims"),
        ({"EventType": "OperateCallback", "EventMessage": {}}, "live.caster"),
        ({"EventType": "OperateCallback", "CasterId": "c"}, "live.caster"),
        ({"Contents": []}, "rtc"),
        ({"event_type": 314}, "tencent"),
        ({"domain": "d", "app": "a", "stream": "s"}, "live.record"),
    ],
)
def test_detect_source(payload: dict[str, Any], source: str) -> None:
    assert detect_source(payload) == source
    assert detect_source(json.dumps(payload)) == source


def test_detect_source_says_what_it_looked_for() -> None:
    with pytest.raises(InvalidPayload, match="cannot tell the source: expected EventType"):
        detect_source({"hello": "world"})
    with pytest.raises(InvalidPayload, match="not valid JSON"):
        detect_source(b"{")
