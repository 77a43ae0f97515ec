"""Errors that name the real cause, through the real CLI: 413, the MNS size limit, a closed stdout pipe."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli import IMS_WORKER, clean_env, cli
from tests.conftest import SAMPLES_DIR
from tests.servers import free_port
from tests.shim_server import serving
from worker.cli import package_version
from worker.deadletter import DeadLetterStore
from worker.settings import Settings
from worker.shim import create_app


@pytest.fixture
def small_shim(redis_url: str) -> Iterator[str]:
    settings = Settings(
        _env_file=None, broker_url=redis_url, shim_max_body_bytes=1024, shim_allow_unsigned=["live.record"]
    )
    with serving(create_app(settings), free_port()) as base:
        yield base


def padded_sample(tmp_path: Path, size: int) -> Path:
    payload = json.loads((SAMPLES_DIR / "live-record" / "file_created.json").read_text())
    payload["padding"] = "x" * size
    path = tmp_path / f"big-{size}.json"
    path.write_text(json.dumps(payload))
    return path


@pytest.mark.integration
@pytest.mark.parametrize("size", [5_000, 400_000])
def test_send_http_to_a_shim_that_answers_413_says_so(
    small_shim: str, tmp_path: Path, redis_url: str, size: int
) -> None:
    done = cli("send", str(padded_sample(tmp_path, size)), "--http", small_shim, cwd=tmp_path)
    assert done.returncode == 1, done
    assert ": 413 " in done.stderr and "exceeds the limit of 1024 bytes" in done.stderr, done.stderr
    assert "reset" not in done.stderr.lower() and "cannot reach" not in done.stderr


def test_send_mns_checks_the_message_size_limit_before_sending(tmp_path: Path) -> None:
    big = padded_sample(tmp_path, 70_000)
    # No MNS endpoint at all: the size is refused before any connection (or configuration) matters.
    done = cli("send", str(big), "--mns", "ice-callback-demo", cwd=tmp_path)
    assert done.returncode == 1, done
    assert "over the MNS limit of 65536 bytes (64 KiB) per message; nothing was sent" in done.stderr
    assert "Broken pipe" not in done.stderr and "configuration error" not in done.stderr
    just_fits = padded_sample(tmp_path, 49_500)  # over 64 KiB only after base64
    done = cli("send", str(just_fits), "--mns", "q", "--base64", cwd=tmp_path)
    assert done.returncode == 1 and "after base64, over the MNS limit" in done.stderr


@pytest.mark.integration
def test_a_reader_that_leaves_early_is_not_a_redis_error(redis_url: str, tmp_path: Path) -> None:
    store = DeadLetterStore(redis_url)
    entry = store.add(raw="x" * 300_000, source="ims", reason="permanent failure", error="boom")
    store.close()
    assert entry is not None
    process = subprocess.Popen(
        [IMS_WORKER, "dlq", "show", entry],
        cwd=tmp_path,
        env=clean_env({"IMS_WORKER_BROKER_URL": redis_url}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # `| true`: the reader is gone before the first byte
    with process.stderr:
        err = process.stderr.read().decode()
    assert process.wait(timeout=30) == 141
    assert err == "", err


def test_version_and_source_choices(tmp_path: Path) -> None:
    done = cli("--version", cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == f"ims-worker {package_version()}"
    assert package_version()[0].isdigit()
    done = cli("dlq", "list", "--source", "imss", cwd=tmp_path)
    assert (
        done.returncode == 2 and "--source 'imss' is not a source; sources: ims, live.caster" in done.stderr
    )
