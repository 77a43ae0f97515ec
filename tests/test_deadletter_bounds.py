"""The dead-letter store is bounded per source, at its defaults, against a real shim process (issue 22, 8).

Seen before: one captured Tencent ``t``/``sign`` pair let an attacker add distinct 64 KB entries for the
whole signature window (the body is read and kept before anything but ``t`` is checked). Now each source
holds at most ``IMS_WORKER_DEADLETTER_MAX_BYTES_PER_SOURCE`` (16 MiB) and ``..._MAX_ENTRIES_PER_SOURCE``
(10,000); over it the shim answers 503 + ``Retry-After`` and keeps nothing; a purge gives the room back.
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
from worker.settings import Settings
from worker.shim import ENDPOINTS, sign_request

pytestmark = pytest.mark.integration

IMS_WORKER = str(Path(sys.executable).with_name("ims-worker"))
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULTS = Settings(_env_file=None)
KEY = "tencent-dlq-bound-key-0123456789abcdef"


def test_one_captured_signature_cannot_fill_the_store(redis_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMS_WORKER_", "PROMETHEUS_MULTIPROC"))}
    env.update(
        IMS_WORKER_BROKER_URL=redis_url, IMS_WORKER_TENCENT_CALLBACK_KEY=KEY, IMS_WORKER_LOG_FORMAT="json"
    )
    port = free_port()
    log = tmp_path / "shim.log"
    with log.open("wb") as sink:
        shim = subprocess.Popen(
            [IMS_WORKER, "shim", "--port", str(port)], cwd=REPO_ROOT, env=env, stdout=sink, stderr=sink
        )
    sample = json.loads((SAMPLES_DIR / "tencent-css" / "TaskStart.json").read_text())
    sample["appid"] = "not-a-number"  # authenticated, then invalid: a dead letter
    # One signed pair, reused for every body (only t is signed): distinct bodies of about 60 KB each.
    _, _, first = sign_request("tencent", json.dumps(sample).encode(), key=KEY)
    t, sign = json.loads(first)["t"], json.loads(first)["sign"]
    store = DeadLetterStore(redis_url)
    answers: list[httpx.Response] = []
    try:
        wait_for_port(port, timeout=30)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            limit = DEFAULTS.deadletter_max_bytes_per_source // (60 * 1024) + 10
            for n in range(limit):
                body = {**sample, "padding": f"{n:08d}" + "x" * (60 * 1024), "t": t, "sign": sign}
                answer = client.post(ENDPOINTS["tencent"], json=body)
                answers.append(answer)
                if answer.status_code == 503:
                    break
            refused = answers[-1]
            kept = store.usage()["tencent"]
            print(
                f"kept {kept[0]} entries, {kept[1] / 1024 / 1024:.1f} MiB; refused after {len(answers) - 1}"
            )
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"] == "60" and refused.json()["error"] == "dead_letters_full"
            assert all(a.status_code == 200 for a in answers[:-1])
            assert kept[1] <= DEFAULTS.deadletter_max_bytes_per_source
            assert store.count() == kept[0] == len(answers) - 1
            # Making room (a purge, a redrive) gives the bound back.
            store.delete([e.id for e in store.list(limit=5)])
            again = client.post(
                ENDPOINTS["tencent"], json={**sample, "padding": "again", "t": t, "sign": sign}
            )
            assert again.status_code == 200, again.text
    finally:
        store.close()
        shim.send_signal(signal.SIGTERM)
        shim.wait(timeout=30)
    assert '"shim.dead_letter_refused"' in log.read_text()
