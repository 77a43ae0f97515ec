"""`ims-worker events list` and `ims-worker events parse`: in-process through main(), and the real script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from worker.cli import main
from worker.events import CATALOGUE, SOURCES, Event

SAMPLES = Path(__file__).resolve().parent.parent / "worker" / "samples"
SCRIPT = Path(sys.executable).parent / "ims-worker"
PREFIX = {
    "ims": "ims.",
    "live-caster": "live.caster.",
    "live-record": "live.record.",
    "tencent-css": "tencent.relay.",
}


def expected_types(path: Path) -> list[str]:
    if path.parent.name == "rtc":
        return ["rtc.UserEvent", "rtc.ChannelEvent"]
    return [PREFIX[path.parent.name] + path.stem]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["events", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*/*.json")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_parse_prints_the_normalized_events_of_every_sample(
    capsys: pytest.CaptureFixture[str], path: Path
) -> None:
    code, out, err = run(capsys, "parse", str(path))
    assert (code, err) == (0, "")
    printed: list[dict[str, Any]] = json.loads(out)
    assert [item["type"] for item in printed] == expected_types(path)
    whole = json.loads(path.read_bytes())
    for item in printed:
        event = Event.model_validate(item)  # what is printed is a whole event
        # An RTC event keeps only its own item of Contents; other sources keep the payload as sent.
        own = {**whole, "Contents": [whole["Contents"][event.index]]} if "Contents" in whole else whole
        assert event.raw == own


def test_parse_with_an_explicit_source_and_receipt_time(capsys: pytest.CaptureFixture[str]) -> None:
    sample = str(SAMPLES / "live-record" / "record_started.json")
    ids = set()
    for _ in range(2):
        code, out, _ = run(
            capsys, "parse", sample, "--source", "live.record", "--received-at", "2024-05-01T12:00"
        )
        [event] = json.loads(out)
        assert (code, event["received_at"]) == (0, "2024-05-01T12:00:00Z")
        ids.add(event["id"])
    assert len(ids) == 1  # reproducible, for replays of payloads that carry no time


def test_parse_under_the_wrong_source_names_the_missing_field(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "parse", str(SAMPLES / "ims" / "FileUploadComplete.json"), "--source", "tencent"
    )
    assert (code, out) == (1, "")
    assert "invalid payload: missing field event_type" in err


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (
            b'{"EventType": "FileUploadComplete", "MessageBody": {',
            "invalid payload: payload is not valid JSON",
        ),
        (b"[]", "invalid payload: payload must be a JSON object, got an array"),
        (b"", "invalid payload: payload is empty"),
        (b'{"hello": "world"}', "invalid payload: cannot tell the source"),
        (
            b'{"EventType": "FileUploadComplete", "UserId": 1, "EventTime": "2024-01-01T00:00:00Z",'
            b' "MessageBody": {}}',
            "invalid payload: ims.FileUploadComplete: MessageBody.MediaId: Field required",
        ),
        (b'{"Contents": [{"UserEvent": {}}]}', "invalid payload: missing field Contents[0].Event"),
    ],
)
def test_parse_rejects_malformed_files_with_the_reason(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes, reason: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    code, out, err = run(capsys, "parse", str(bad))
    assert (code, out) == (1, "")
    assert err.startswith(f"ims-worker events parse: {bad}: ")
    assert reason in err


def test_parse_a_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "parse", str(tmp_path / "nope.json"))
    assert (code, out) == (1, "")
    assert "cannot read" in err and "No such file or directory" in err


def test_list_is_the_whole_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "list")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["TYPE", "SOURCE", "DEPRECATED", "DESCRIPTION"]
    assert sorted(row.split()[0] for row in rows) == sorted(CATALOGUE)
    assert next(r for r in rows if r.startswith("ims.TranscodeComplete ")).split()[2] == "yes"
    assert "A media transcoding job is complete." in next(
        r for r in rows if r.startswith("ims.MediaConvertComplete")
    )


def test_list_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "list", "--json")
    rows = {row["type"]: row for row in json.loads(out)}
    assert code == 0 and set(rows) == set(CATALOGUE)
    assert rows["ims.TranscodeParentComplete"]["deprecated"] is True
    assert rows["rtc.UserEvent"] == {
        "type": "rtc.UserEvent",
        "source": "rtc",
        "description": CATALOGUE["rtc.UserEvent"].description,
        "deprecated": False,
    }


def test_an_unknown_source_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["events", "parse", "x.json", "--source", "youtube"])
    assert exited.value.code == 2
    assert "invalid choice: 'youtube'" in capsys.readouterr().err


# --- the installed script -----------------------------------------------------------------------------------


def script(*argv: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(SCRIPT), "events", *argv], input=stdin, capture_output=True, timeout=60, check=False
    )


def test_the_script_parses_a_sample_file_and_stdin() -> None:
    sample = SAMPLES / "tencent-css" / "TaskExit.json"
    from_file = script("parse", str(sample))
    assert from_file.returncode == 0, from_file.stderr
    assert [e["type"] for e in json.loads(from_file.stdout)] == ["tencent.relay.TaskExit"]
    from_stdin = script("parse", "-", stdin=sample.read_bytes())
    assert json.loads(from_stdin.stdout)[0]["id"] == json.loads(from_file.stdout)[0]["id"]


def test_the_script_exits_1_with_the_reason_on_a_malformed_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"EventType": "ProduceMediaComplete", "MessageBody": []}')
    result = script("parse", str(bad))
    assert (result.returncode, result.stdout) == (1, b"")
    assert b"invalid payload: ims.ProduceMediaComplete: UserId: Field required" in result.stderr
    assert b"Traceback" not in result.stderr


def test_the_script_lists_the_catalogue() -> None:
    result = script("list", "--json")
    assert result.returncode == 0
    # Built-in types only: a provider another test module registered in this process is not the script's.
    builtin = {name for name, spec in CATALOGUE.items() if spec.source in SOURCES}
    assert {row["type"] for row in json.loads(result.stdout)} == builtin


def test_the_script_shows_the_fields_of_a_type_with_examples_from_its_sample() -> None:
    result = script("show", "ims.ProduceMediaComplete")
    assert result.returncode == 0, result.stderr
    text = result.stdout.decode()
    assert text.startswith("ims.ProduceMediaComplete: ")
    media_id = json.loads((SAMPLES / "ims" / "ProduceMediaComplete.json").read_text())["MessageBody"][
        "MediaId"
    ]
    row = next(line for line in text.splitlines() if line.startswith("MessageBody.MediaId "))
    assert row.split()[:3] == ["MessageBody.MediaId", "str", "yes"] and f'"{media_id}"' in row
    optional = next(line for line in text.splitlines() if line.startswith("MessageBody.ErrorCode "))
    assert "str | None" in optional and " yes " not in optional
    as_json = json.loads(script("show", "rtc.UserEvent", "--json").stdout)
    paths = {f["path"]: f for f in as_json["fields"]}
    assert paths["UserEvent.UserId"]["type"] == "str" and paths["UserEvent.UserId"]["required"] is True
    assert paths["UserEvent.UserId"]["example"]  # from the bundled RTC sample


def test_an_unknown_type_to_show_is_an_error_naming_the_nearest_types() -> None:
    result = script("show", "ProduceMediaComplet")
    assert result.returncode == 2
    assert b"unknown event type 'ProduceMediaComplet'; did you mean ims.ProduceMediaComplete" in result.stderr
    assert b"Traceback" not in result.stderr and result.stdout == b""
