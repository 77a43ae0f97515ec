"""``ims-worker send``: real SDK into the MNS emulator, real signed POSTs into a real shim on real Redis."""

from __future__ import annotations

import argparse
import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import SAMPLES_DIR
from tests.servers import free_port, is_queue
from tests.shim_server import serving
from worker.cli import send
from worker.devtools.inject import close_queue, endpoint_url
from worker.devtools.mns_emulator.app import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, MnsEmulator
from worker.errors import ConfigurationError
from worker.mns.client import open_queue
from worker.settings import load_settings
from worker.shim import create_app

QUEUE = "ice-callback-send-test"
KEYS = {
    "IMS_WORKER_IMS_CALLBACK_KEY": "send-test-ims",
    "IMS_WORKER_LIVE_AUTH_KEY": "send-test-live",
    "IMS_WORKER_RTC_APP_KEY": "send-test-rtc",
    "IMS_WORKER_TENCENT_CALLBACK_KEY": "send-test-tencent",
    "IMS_WORKER_CASTER_TOKEN": "send-test-caster",
}
WEBHOOK_DIRS = ("live-caster", "live-record", "rtc", "tencent-css")


def run_send(argv: list[str]) -> int:
    """The ``send`` subcommand exactly as ``ims-worker`` wires it, in this process."""
    parser = argparse.ArgumentParser(prog="ims-worker")
    send.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["send", *argv])
    code: int = args.func(args)
    return code


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[MnsEmulator]:
    with MnsEmulator(queues=[QUEUE]) as emu:
        monkeypatch.setenv("IMS_WORKER_MNS_ENDPOINT", emu.endpoint)
        monkeypatch.setenv("IMS_WORKER_MNS_ACCESS_KEY_ID", DEFAULT_ACCESS_KEY_ID)
        monkeypatch.setenv("IMS_WORKER_MNS_ACCESS_KEY_SECRET", DEFAULT_ACCESS_KEY_SECRET)
        yield emu


def receive_all(count: int) -> list[str]:
    queue = open_queue(load_settings(), QUEUE)
    bodies: list[str] = []
    try:
        while len(bodies) < count:
            bodies += [m.message_body for m in queue.batch_receive_message(16, 1)]
    finally:
        close_queue(queue)
    return bodies


def test_mns_sends_each_file_as_one_plain_json_message(
    emulator: MnsEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    files = sorted((SAMPLES_DIR / "ims").glob("*.json"))
    assert run_send([*map(str, files), "--mns", QUEUE]) == 0
    assert emulator.stats(QUEUE).active == len(files) == 29
    assert sorted(receive_all(len(files))) == sorted(f.read_text() for f in files)
    out = capsys.readouterr().out
    assert out.count(f"sent to MNS queue {QUEUE} as message") == 29


def test_mns_base64_encodes_bodies(emulator: MnsEmulator) -> None:
    sample = SAMPLES_DIR / "ims" / "ProduceMediaComplete.json"
    assert run_send([str(sample), "--mns", QUEUE, "--base64"]) == 0
    (body,) = receive_all(1)
    assert base64.b64decode(body).decode() == sample.read_text()


def test_mns_unknown_queue_is_a_clear_error(emulator: MnsEmulator) -> None:
    # ims-worker's main turns ConfigurationError into "configuration error: ..." and exit code 2.
    sample = SAMPLES_DIR / "ims" / "ProduceMediaComplete.json"
    with pytest.raises(ConfigurationError, match=r"queue 'no-such-queue' does not exist \(QueueNotExist\)"):
        run_send([str(sample), "--mns", "no-such-queue"])


def test_mns_wrong_secret_is_refused(emulator: MnsEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMS_WORKER_MNS_ACCESS_KEY_SECRET", "not-the-secret")
    sample = SAMPLES_DIR / "ims" / "ProduceMediaComplete.json"
    with pytest.raises(ConfigurationError, match="SignatureDoesNotMatch"):
        run_send([str(sample), "--mns", QUEUE])
    assert emulator.stats(QUEUE).active == 0


def test_mns_without_endpoint_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IMS_WORKER_MNS_ENDPOINT", raising=False)
    sample = SAMPLES_DIR / "ims" / "ProduceMediaComplete.json"
    with pytest.raises(ConfigurationError, match="IMS_WORKER_MNS_ENDPOINT is not set"):
        run_send([str(sample), "--mns", QUEUE])


def test_missing_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run_send([str(tmp_path / "nope.json"), "--mns", QUEUE]) == 2
    assert "cannot read" in capsys.readouterr().err


@pytest.fixture
def shim_url(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("IMS_WORKER_SHIM_PUBLIC_URL", raising=False)
    # No public URL: the shim checks signatures against the Host it is called on, as send assumes.
    settings = load_settings(broker_url=redis_url)
    with serving(create_app(settings), free_port()) as base:
        yield base


def queued(redis_url: str) -> int:
    """Task messages waiting in the Celery queues."""
    client = redis.Redis.from_url(redis_url)
    try:
        return sum(int(client.llen(k)) for k in client.scan_iter() if is_queue(client, k))
    finally:
        client.close()


@pytest.mark.integration
def test_http_posts_every_webhook_sample_signed_and_detects_the_provider(
    shim_url: str, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    files = [f for d in WEBHOOK_DIRS for f in sorted((SAMPLES_DIR / d).glob("*.json"))]
    assert run_send([*map(str, files), "--http", shim_url]) == 0
    out = capsys.readouterr().out
    assert out.count(": 200 ") == len(files) == 13
    for route in ("/webhooks/live/caster", "/webhooks/live/record", "/webhooks/rtc", "/webhooks/tencent/css"):
        assert route in out
    assert "send-test-caster" not in out, "the caster token must not be printed"
    assert queued(redis_url) == 14  # the RTC sample carries two events


@pytest.mark.integration
def test_http_with_a_key_the_shim_does_not_know_is_401(
    shim_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], redis_url: str
) -> None:
    monkeypatch.setenv("IMS_WORKER_LIVE_AUTH_KEY", "some-other-key")
    sample = SAMPLES_DIR / "live-record" / "record_started.json"
    assert run_send([str(sample), "--http", shim_url]) == 1
    err = capsys.readouterr().err
    assert ": 401 " in err
    assert queued(redis_url) == 0


@pytest.mark.integration
def test_http_provider_flag_and_undetectable_payloads(
    shim_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    odd = tmp_path / "odd.json"
    odd.write_text('{"hello": "world"}')
    assert run_send([str(odd), "--http", shim_url]) == 1
    assert "cannot tell the source" in capsys.readouterr().err
    # Forced to a provider it does not fit: signed, so the shim keeps it as a dead letter and says why.
    assert run_send([str(odd), "--http", shim_url, "--provider", "live-record"]) == 1
    assert '"dead_lettered":true' in capsys.readouterr().err
    sample = SAMPLES_DIR / "live-record" / "file_created.json"
    assert (
        run_send([str(sample), "--http", shim_url + "/webhooks/live/record", "--provider", "live.record"])
        == 0
    )


def test_http_unreachable_shim_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    sample = SAMPLES_DIR / "live-record" / "file_created.json"
    assert run_send([str(sample), "--http", f"http://127.0.0.1:{free_port()}"]) == 1
    assert "cannot reach" in capsys.readouterr().err


def test_endpoint_url_adds_the_route_only_to_a_bare_base() -> None:
    assert endpoint_url("http://h:8080", "rtc") == "http://h:8080/webhooks/rtc"
    assert endpoint_url("http://h:8080/", "tencent-css") == "http://h:8080/webhooks/tencent/css"
    assert endpoint_url("https://h/hooks/ims", "ims") == "https://h/hooks/ims"
    with pytest.raises(ConfigurationError, match="http"):
        endpoint_url("ftp://h/x", "ims")
