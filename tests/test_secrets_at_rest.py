"""Secrets at rest and in the CLI's output (issue 22, item 9), against a real shim process and the real CLI.

Seen before: ``dlq show`` and ``dlq list --json`` printed raw bodies, Tencent's ``sign`` included (one
captured ``t``/``sign`` pair authenticates any body until ``t``), and signed OSS URLs (``OSSAccessKeyId``,
``Signature``) in clear. Now the dead-letter store never holds the provider's body signature, and the CLI
prints every credential redacted unless ``--raw`` (which says on stderr what it prints).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import SAMPLES_DIR
from tests.servers import free_port, wait_for_port
from worker.delivery.deadletter import DeadLetterStore
from worker.shim import ENDPOINTS, sign_request

pytestmark = pytest.mark.integration

IMS_WORKER = str(Path(sys.executable).with_name("ims-worker"))
REPO_ROOT = Path(__file__).resolve().parent.parent
KEY = "tencent-at-rest-key-0123456789abcdef"
OSS_KEY_ID = "LTAI5tAtRestKeyId01"
OSS_SIGNATURE = "AtRestSignature0123456789%3D"
SIGNED_URL = (
    "https://bucket.oss-cn-shanghai.aliyuncs.com/clip.mp4"
    f"?OSSAccessKeyId={OSS_KEY_ID}&Expires=1900000000&Signature={OSS_SIGNATURE}"
)


def env_for(redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMS_WORKER_", "PROMETHEUS_MULTIPROC"))}
    env.update(IMS_WORKER_BROKER_URL=redis_url, IMS_WORKER_LOG_FORMAT="json")
    return env


def cli(redis_url: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [IMS_WORKER, *argv], env=env_for(redis_url), capture_output=True, text=True, timeout=60, check=False
    )


def test_dead_letters_keep_no_provider_signature_and_the_cli_redacts_by_default(
    redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {**env_for(redis_url), "IMS_WORKER_TENCENT_CALLBACK_KEY": KEY}
    log = tmp_path / "shim.log"
    with log.open("wb") as sink:
        shim = subprocess.Popen(
            [IMS_WORKER, "shim", "--port", str(port)], cwd=REPO_ROOT, env=env, stdout=sink, stderr=sink
        )
    try:
        wait_for_port(port, timeout=30)
        payload = json.loads((SAMPLES_DIR / "tencent-css" / "TaskStart.json").read_text())
        payload["appid"] = "not-a-number"  # authenticated, then fails validation: kept as a dead letter
        payload["source_urls"] = json.dumps([SIGNED_URL])
        headers, _, body = sign_request("tencent", json.dumps(payload).encode(), key=KEY)
        sign = json.loads(body)["sign"]
        answer = httpx.post(f"http://127.0.0.1:{port}{ENDPOINTS['tencent']}", content=body, headers=headers)
        assert answer.status_code == 200 and answer.json()["dead_lettered"] is True, answer.text
    finally:
        shim.send_signal(signal.SIGTERM)
        shim.wait(timeout=30)

    store = DeadLetterStore(redis_url)
    (entry,) = store.list()
    store.close()
    assert sign not in entry.raw.decode() and json.loads(entry.raw)["sign"] == "[REDACTED]"  # at rest
    assert OSS_SIGNATURE in entry.raw.decode()  # kept as sent (a redrive needs it), printed redacted

    for argv in (("dlq", "show", entry.id), ("dlq", "list", "--json"), ("dlq", "list")):
        shown = cli(redis_url, *argv)
        assert shown.returncode == 0, shown.stderr
        for secret in (sign, OSS_KEY_ID, OSS_SIGNATURE):
            assert secret not in shown.stdout, (argv, secret)
        assert "--raw" not in shown.stderr
    shown = json.loads(cli(redis_url, "dlq", "show", entry.id).stdout)
    assert "OSSAccessKeyId=[REDACTED]" in shown["raw"] and "Expires=1900000000" in shown["raw"]

    raw = cli(redis_url, "dlq", "show", entry.id, "--raw")
    assert raw.returncode == 0 and OSS_SIGNATURE in raw.stdout and OSS_KEY_ID in raw.stdout
    assert "--raw prints what the store holds as it is" in raw.stderr
    assert sign not in raw.stdout  # never stored, so not even --raw shows it
