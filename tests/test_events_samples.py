"""Every documented sample normalizes to the right type, with its identifying fields and payload fields."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from worker.events import CATALOGUE, SOURCES, Event
from worker.providers import detect_source, normalize

SAMPLES = Path(__file__).resolve().parent.parent / "worker" / "samples"
MB = "data.MessageBody"

# sample file, expected type, {attribute path: value} (identifying fields first, then payload fields).
CASES: list[tuple[str, str, dict[str, Any]]] = [
    (
        "ims/FileUploadComplete.json",
        "ims.FileUploadComplete",
        {
            "data.EventType": "FileUploadComplete",
            "data.UserId": 1833220977560785,
            f"{MB}.MediaId": "c321b3a0041a71eda1590674a2ce****",
            f"{MB}.Size": "5510872",
            f"{MB}.MediaType": "video",
        },
    ),
    (
        "ims/UploadByURLComplete.json",
        "ims.UploadByURLComplete",
        {
            "data.EventType": "UploadByURLComplete",
            f"{MB}.JobId": "88aabd2461ec4ad389f439f6ff92****",
            f"{MB}.SourceURL": "http://***/big_buck_bunny.mp4",
            f"{MB}.AppId": "app-1000000",
        },
    ),
    (
        "ims/ImageUploadComplete.json",
        "ims.ImageUploadComplete",
        {
            "data.EventType": "ImageUploadComplete",
            f"{MB}.MediaId": "7e976e80fd0571ec82115523919d****",
            f"{MB}.Size": "132066",
            f"{MB}.MediaType": "image",
        },
    ),
    (
        "ims/AttachedMediaUploadComplete.json",
        "ims.AttachedMediaUploadComplete",
        {
            "data.EventType": "AttachedMediaUploadComplete",
            f"{MB}.MediaId": "b3e59350040871ed9d535532918c****",
            f"{MB}.Size": "34758",
            f"{MB}.MediaType": "text",
        },
    ),
    (
        "ims/RegisterStreamComplete.json",
        "ims.RegisterStreamComplete",
        {
            "data.EventType": "RegisterStreamComplete",
            f"{MB}.MediaId": "fa04bee0028e71edb10f81848c01****",
            f"{MB}.Status": "Success",
            f"{MB}.parsed_user_data": {"MessageCallback": {"CallbackURL": "***", "CallbackType": "http"}},
        },
    ),
    (
        "ims/StreamUploadComplete.json",
        "ims.StreamUploadComplete",
        {
            "data.EventType": "StreamUploadComplete",
            f"{MB}.MediaId": "b37ff450fc6071ec9c5e472190a9****",
            f"{MB}.Status": "Success",
            f"{MB}.parsed_user_data": {"MessageCallback": '{"CallbackURL":"***","CallbackType":"http"}'},
        },
    ),
    (
        "ims/UploadStreamByURLComplete.json",
        "ims.UploadStreamByURLComplete",
        {
            "data.EventType": "UploadStreamByURLComplete",
            f"{MB}.JobId": "7f0d49297cb0fa50ab7341fd60f4****",
            f"{MB}.SourceURL": "http://***/example/html5/mov_bbb.mp4",
            f"{MB}.Status": "Success",
        },
    ),
    (
        "ims/CreateAuditComplete.json",
        "ims.CreateAuditComplete",
        {
            "data.EventType": "CreateAuditComplete",
            f"{MB}.MediaId": "71151b80f2d471ecb21b472190a9****",
            f"{MB}.AuditStatus": "Normal",
            f"{MB}.Auditor": "auditor",
        },
    ),
    (
        "ims/RegisterMediaComplete.json",
        "ims.RegisterMediaComplete",
        {
            "data.EventType": "RegisterMediaComplete",
            f"{MB}.MediaId": "71151b80f2d471ecb21b472190a9****",
            f"{MB}.Status": "Success",
            f"{MB}.ErrorCode": None,
        },
    ),
    (
        "ims/DeleteMediaComplete.json",
        "ims.DeleteMediaComplete",
        {
            "data.EventType": "DeleteMediaComplete",
            f"{MB}.MediaId": "71151b80f2d471ecb21b472190a9****",
            f"{MB}.DeleteType": "all",
            f"{MB}.Status": "Success",
        },
    ),
    (
        "ims/MediaBaseChangeComplete.json",
        "ims.MediaBaseChangeComplete",
        {
            "data.EventType": "MediaBaseChangeComplete",
            f"{MB}.MediaId": "3b46b391419aj294m83b459f7435****",
            f"{MB}.OperateMode": "update",
            f"{MB}.parsed_media_content.CoverURL.NewValue": "http://cdn.com/ee.png",
        },
    ),
    (
        "ims/WorkflowTaskComplete.json",
        "ims.WorkflowTaskComplete",
        {
            "data.EventType": "WorkflowTaskComplete",
            f"{MB}.TaskId": "71151b80f2d471ecb21b472190a9****",
            f"{MB}.WorkflowId": "SW-1010****",
            f"{MB}.parsed_task_input.Media": "4c3a4a30041b71edbfc96732b68f****",
        },
    ),
    (
        "ims/VideoAnalysisComplete.json",
        "ims.VideoAnalysisComplete",
        {
            "data.EventType": "VideoAnalysisComplete",
            f"{MB}.MediaId": "4c3a4a30041b71edbfc96732b68f****",
            f"{MB}.MetaInfo.Fps": 24.0,
            f"{MB}.MetaInfo.Width": "3120",
        },
    ),
    (
        "ims/SnapshotComplete.json",
        "ims.SnapshotComplete",
        {
            "data.EventType": "SnapshotComplete",
            f"{MB}.JobId": "11a32131403478e92cc01399855****",
            f"{MB}.Count": 5,
            f"{MB}.parsed_input.ossFile.Object": "xxx.mp4",
            f"{MB}.parsed_template_config.Width": 1280,
            f"{MB}.parsed_user_data": {"aaa": "bbb"},
        },
    ),
    (
        "ims/DynamicImageComplete.json",
        "ims.DynamicImageComplete",
        {
            "data.EventType": "DynamicImageComplete",
            f"{MB}.JobId": "11a32131403478e92cc01399855****",
            f"{MB}.parsed_output.ossFile.Object": "yyy.gif",
            f"{MB}.TemplateId": "2590d131403478e92cc01399833****",
        },
    ),
    (
        "ims/TranscodeComplete.json",
        "ims.TranscodeComplete",
        {
            "data.EventType": "TranscodeComplete",
            f"{MB}.JobId": "533d2c5eac5b4f0aaf2d09c7ee884cae",
            f"{MB}.ParentJobId": "a11f624c98e84f6b839d4ffb74b7****",
            f"{MB}.OutFileMeta.fileBasicInfo.fileSize": "16078713",
        },
    ),
    (
        "ims/TranscodeParentComplete.json",
        "ims.TranscodeParentComplete",
        {
            "data.EventType": "TranscodeParentComplete",
            f"{MB}.ParentJobId": "a11f624c98e84f6b839d4ffb74b7****",
            f"{MB}.Jobs[0].JobId": "533d2c5eac5b4f0aaf2d09c7ee88****",
            f"{MB}.Name": "Audio and image enhancement-0001",
        },
    ),
    (
        "ims/MediaConvertComplete.json",
        "ims.MediaConvertComplete",
        {
            "data.EventType": "MediaConvertComplete",
            f"{MB}.JobId": "6f6739ea9c4a45c4bfce6eb17189ca6f",
            f"{MB}.Status": "Complete",
            f"{MB}.TriggerSource": "Console",
        },
    ),
    (
        "ims/MediaConvertOutputGroupComplete.json",
        "ims.MediaConvertOutputGroupComplete",
        {
            "data.EventType": "MediaConvertOutputGroupComplete",
            f"{MB}.JobId": "6c5f4e6a4bbc4d06b774eaaf63cd35f6",
            f"{MB}.Name": "HLS",
            f"{MB}.TaskId": "6d4c8431636f4ff88c638e7d54036a30",
        },
    ),
    (
        "ims/MediaConvertOutputComplete.json",
        "ims.MediaConvertOutputComplete",
        {
            "data.EventType": "MediaConvertOutputComplete",
            f"{MB}.JobId": "2e083368d3224d22a8f3170ff9ff1cac",
            f"{MB}.MediaId": "054589a03aaa71f09951e7f6c6586302",
            f"{MB}.OutFileMeta.audioStreamInfoList[0].index": "1",
            f"{MB}.parsed_user_data.ImsSrc": "Workflow",
        },
    ),
    (
        "ims/AIMediaAuditComplete.json",
        "ims.AIMediaAuditComplete",
        {
            "data.EventType": "AIMediaAuditComplete",
            f"{MB}.JobId": "12fa59321345435e84d610d4cb1e****",
            f"{MB}.Status": "Success",
            f"{MB}.parsed_media_id.media": "02389c00031e71edbfdc90a58843****",
        },
    ),
    (
        "ims/AIProduceComplete.json",
        "ims.AIProduceComplete",
        {
            "data.EventType": "AIProduceComplete",
            f"{MB}.JobId": "168510ad1a2a4806bfce31fe1799532c",
            f"{MB}.FunctionName": "Cover",
            f"{MB}.OutputFiles[2]": "meinv-00003.jpg",
            f"{MB}.parsed_result[0].Url": "meinv-00002.jpg",
        },
    ),
    (
        "ims/MediaAiAnalysisComplete.json",
        "ims.MediaAiAnalysisComplete",
        {
            "data.EventType": "MediaAiAnalysisComplete",
            f"{MB}.MediaId": "****b391419aj294m83b459f7435****",
            f"{MB}.JobStatus": "AnalyzeSuccess",
            f"{MB}.Type": "StandardSmartTag",
        },
    ),
    (
        "ims/ProduceMediaComplete.json",
        "ims.ProduceMediaComplete",
        {
            "data.EventType": "ProduceMediaComplete",
            f"{MB}.JobId": "8bc08c859569446ca5303ea903ca****",
            f"{MB}.ProjectId": "aded28bac782446a8e5a7cf86b67****",
            f"{MB}.ErrorCode": "",
            f"{MB}.parsed_user_data": {"NotifyAddress": "http://xx.xx.xxx"},
        },
    ),
    (
        "ims/BatchProduceMediaComplete.json",
        "ims.BatchProduceMediaComplete",
        {
            "data.EventType": "BatchProduceMediaComplete",
            f"{MB}.JobId": "61195f35cc7d4786a0bda02390cb4587",
            f"{MB}.Status": "Finished",
            f"{MB}.UserData": '{"NotifyAddress":"https://**.**.**"}',
        },
    ),
    (
        "ims/SmartJobComplete.json",
        "ims.SmartJobComplete",
        {
            "data.EventType": "SmartJobComplete",
            f"{MB}.JobId": "7a5d99e67ecc4fd0a7937fa2fa******",
            f"{MB}.JobType": "TextToSpeech",
            f"{MB}.Status": "Finished",
        },
    ),
    (
        "ims/LiveRecordFileCreated.json",
        "ims.LiveRecordFileCreated",
        {
            "data.EventType": "LiveRecordFileCreated",
            f"{MB}.record_id": "13a10bbb-f717-4228-9e53-db8f****",
            f"{MB}.duration": 35.09,
            f"{MB}.stop_time": 1656466456,
        },
    ),
    (
        "ims/LiveRecordTaskStatus.json",
        "ims.LiveRecordTaskStatus",
        {
            "data.EventType": "LiveRecordTaskStatus",
            f"{MB}.jobId": "d6a856d4-ca81-47e8-9d66-*****",
            f"{MB}.event": "record_paused",
            f"{MB}.session": "725d15ba-c589-3aeb-a3b6-*****",
        },
    ),
    (
        "ims/LiveSnapshotFileCreated.json",
        "ims.LiveSnapshotFileCreated",
        {
            "data.EventType": "LiveSnapshotFileCreated",
            f"{MB}.JobId": "cef3de8c-b02c-4462-ad02-****",
            f"{MB}.Height": 720,
            f"{MB}.Object": "app/snapshot.jpg",
        },
    ),
    (
        "live-caster/OperateCallback.json",
        "live.caster.OperateCallback",
        {
            "data.EventType": "OperateCallback",
            "data.CasterId": "16A96B9A-F203-4EC5-8E43-CB92E68F0001",
            "data.EventMessage.RequestId": "26A96B9A-A201-4EC3-8E43-CB92E68FA132",
            "data.EventMessage.Code": "ImageOpenFailed",
        },
    ),
    (
        "live-caster/RuntimeErrorCallback.json",
        "live.caster.RuntimeErrorCallback",
        {
            "data.EventType": "RuntimeErrorCallback",
            "data.CasterId": "16A96B9A-F203-4EC5-8E43-CB92E68F0001",
            "data.EventMessage.Code": "StreamInterrupt",
            "data.EventMessage.Message": "Failed to open stream: rtmp://DOMAIN/APP/STREAM",
        },
    ),
    (
        "live-caster/EpisodeGroupCallback.json",
        "live.caster.EpisodeGroupCallback",
        {
            "data.EventType": "EpisodeGroupCallback",
            "data.EventMessage.ProgramId": "a3c2b6d8-5a1f-4c7e-9d21-6f0b8e4c1a77",
            "data.EventMessage.EpisodeId": "e91f04c2-77b3-4d0a-b5c6-1f2e3d4c5b6a",
            "data.EventMessage.Code": "Success",
        },
    ),
    (
        "live-caster/ShowListDTSCallback.json",
        "live.caster.ShowListDTSCallback",
        {
            "data.EventType": "ShowListDTSCallback",
            "data.CasterId": "3761c920-dfa6-40c7-a79c-2886b1493996",
            "data.EventMessage.ProgressTime": "116796",
            "data.ResponseTime": 1663731128684,
            "occurred_at": datetime(2022, 9, 21, 3, 32, 8, 684000, tzinfo=UTC),
        },
    ),
    (
        "live-record/record_started.json",
        "live.record.record_started",
        {
            "data.event": "record_started",
            "data.domain": "gs_domain",
            "data.stream": "gs_stream",
            "occurred_at": None,
        },
    ),
    (
        "live-record/record_paused.json",
        "live.record.record_paused",
        {"data.event": "record_paused", "data.app": "gs_app", "data.stream": "gs_stream"},
    ),
    (
        "live-record/record_resumed.json",
        "live.record.record_resumed",
        {"data.event": "record_resumed", "data.app": "gs_app", "data.domain": "gs_domain"},
    ),
    (
        "live-record/file_created.json",
        "live.record.file_created",
        {
            "data.uri": "liveApp0001/liveStream0001/0_2017-03-08-23:09:46_2017-03-08-23:10:40.flv",
            "data.duration": 69.403,
            "data.push_args.callback_myid": "1231389741",
            "occurred_at": datetime(2017, 3, 8, 15, 10, 40, tzinfo=UTC),
        },
    ),
    (
        "tencent-css/TaskStart.json",
        "tencent.relay.TaskStart",
        {
            "data.event_type": 314,
            "data.callback_event": "TaskStart",
            "data.task_id": "118148",
            "data.parsed_msg.task_start_time": 0,
            "data.appid": 4,
        },
    ),
    (
        "tencent-css/VodSourceFileStart.json",
        "tencent.relay.VodSourceFileStart",
        {
            "data.callback_event": "VodSourceFileStart",
            "data.task_id": "118145",
            "data.parsed_msg.duration": 14920,
            "data.parsed_msg.index": "0",
            "data.stream_id": "testvod",
        },
    ),
    (
        "tencent-css/VodSourceFileFinish.json",
        "tencent.relay.VodSourceFileFinish",
        {
            "data.callback_event": "VodSourceFileFinish",
            "data.task_id": "118145",
            "data.parsed_source_urls[0]": "http://yourURL.cn/live/normal_466247620000003100448-upload-216b/playlist.m3u8",
            "data.to_url": "rtmp://5000.livepush.myqcloud.com/live/testvod",
        },
    ),
    (
        "tencent-css/TaskExit.json",
        "tencent.relay.TaskExit",
        {
            "data.callback_event": "TaskExit",
            "data.event_type": 314,
            "data.parsed_msg.code": "-22",
            "data.parsed_msg.message": "write packet error.",
            "data.task_id": None,
        },
    ),
]


def resolve(obj: Any, path: str) -> Any:
    """``data.MessageBody.Jobs[0].JobId`` on an object."""
    for part in path.split("."):
        name, _, rest = part.partition("[")
        obj = getattr(obj, name) if not isinstance(obj, dict) else obj[name]
        for index in filter(None, rest.replace("]", "").split("[")):
            obj = obj[int(index)]
    return obj


def test_every_sample_file_is_covered() -> None:
    covered = {case[0] for case in CASES} | {"rtc/eventsub.json"}
    assert covered == {str(p.relative_to(SAMPLES)) for p in SAMPLES.glob("*/*.json")}
    assert {case[1] for case in CASES} | {"rtc.UserEvent", "rtc.ChannelEvent"} == {
        t for t, spec in CATALOGUE.items() if not t.startswith("unknown.") and spec.source in SOURCES
    }


@pytest.mark.parametrize(("sample", "event_type", "expected"), CASES, ids=[c[0] for c in CASES])
def test_sample_normalizes_to_its_type(sample: str, event_type: str, expected: dict[str, Any]) -> None:
    raw = (SAMPLES / sample).read_bytes()
    source = detect_source(raw)
    [event] = normalize(source, raw)
    assert (event.type, event.source) == (event_type, CATALOGUE[event_type].source)
    assert isinstance(event.data, CATALOGUE[event_type].model)
    assert event.raw == json.loads(raw)
    assert event.id.startswith(f"{source}:")
    for path, value in expected.items():
        assert resolve(event, path) == value, path
    if source == "ims":
        assert event.occurred_at == datetime.fromisoformat(json.loads(raw)["EventTime"])


def test_rtc_sample_gives_one_event_per_content_item() -> None:
    raw = (SAMPLES / "rtc" / "eventsub.json").read_bytes()
    assert detect_source(raw) == "rtc"
    user, channel = normalize("rtc", raw)
    assert (user.type, user.index, user.id) == (
        "rtc.UserEvent",
        0,
        "rtc:5f0e6a1c-3b2d-4c8e-9a7f-1e2d3c4b5a69:0",
    )
    assert resolve(user, "data.UserEvent.UserId") == "803316316280001"
    assert resolve(user, "data.UserEvent.CurrentMedias") == [1, 2, 3]
    assert resolve(user, "data.AppId") == "9qb10001"
    assert user.occurred_at == datetime(2021, 1, 5, 13, 53, 6, tzinfo=UTC)
    assert (channel.type, channel.index) == ("rtc.ChannelEvent", 1)
    assert channel.id == "rtc:5f0e6a1c-3b2d-4c8e-9a7f-1e2d3c4b5a69:1"
    assert resolve(channel, "data.ChannelEvent.EventTag") == "Open"
    assert resolve(channel, "data.ChannelEvent.ChannelId") == "888880001"
    assert channel.occurred_at == datetime(2021, 1, 5, 13, 48, 50, tzinfo=UTC)
    # Each event stores the message with only its own item in Contents, not every sibling.
    whole = json.loads(raw)
    assert user.raw == {**whole, "Contents": [whole["Contents"][0]]}
    assert channel.raw == {**whole, "Contents": [whole["Contents"][1]]}


@pytest.mark.parametrize("sample", sorted(str(p.relative_to(SAMPLES)) for p in SAMPLES.glob("*/*.json")))
def test_events_round_trip_through_json(sample: str) -> None:
    for event in normalize(detect_source((SAMPLES / sample).read_bytes()), (SAMPLES / sample).read_bytes()):
        dumped = json.loads(json.dumps(event.model_dump(mode="json")))
        again = Event.model_validate(dumped)
        assert again == event
        assert type(again.data) is type(event.data)
        # The provider's names, not Python's, are what crosses the broker.
        sent = {key for key, value in dumped["data"].items() if value is not None}
        assert sent <= set(dumped["raw"]) | {"Event", "UserEvent", "ChannelEvent"}
