"""``ims-worker shim`` as operators run it: a subprocess, one or several uvicorn workers, real Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import SAMPLES_DIR, SPOOL_DIR_VAR
from tests.servers import free_port, wait_for_port
from worker.settings import load_settings
from worker.shim import ENDPOINTS, sign_request

pytestmark = pytest.mark.integration

IMS_WORKER = str(Path(sys.executable).with_name("ims-worker"))
REPO_ROOT = Path(__file__).resolve().parent.parent


def run_shim(redis_url: str, port: int, workers: int, metrics_dir: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMS_WORKER_") or k == SPOOL_DIR_VAR}
    env.update(
        IMS_WORKER_BROKER_URL=redis_url,
        IMS_WORKER_IMS_CALLBACK_KEY="cli-key",
        IMS_WORKER_SHIM_PUBLIC_URL=f"http://127.0.0.1:{port}",
        IMS_WORKER_LOG_FORMAT="json",
    )
    # Set (even empty), the variable turns prometheus_client's file-backed mode on: only with several workers.
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if workers > 1:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    args = [IMS_WORKER, "shim", "--port", str(port), "--workers", str(workers)]
    return subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.fixture(params=[1, 2], ids=["one-process", "two-workers"])
def served(request: pytest.FixtureRequest, redis_url: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    process = run_shim(redis_url, port, request.param, tmp_path)
    try:
        wait_for_port(port, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    # A graceful stop: uvicorn finishes in-flight requests, runs the shutdown, then re-raises SIGTERM.
    assert process.returncode in (0, -signal.SIGTERM), output.decode(errors="replace")
    assert b"Application shutdown complete" in output
    assert b"cli-key" not in output  # the key never reaches the logs
    assert b"shim.auth.weak_key" in output  # the short key is warned about (it stays accepted)


def test_the_command_serves_signed_webhooks_and_counts_them_across_processes(served: str) -> None:
    settings = load_settings(ims_callback_key="cli-key", shim_public_url=served)
    body = (SAMPLES_DIR / "ims" / "ProduceMediaComplete.json").read_bytes()
    with httpx.Client(base_url=served, timeout=10) as client:
        for _ in range(6):  # several connections, so both worker processes get some
            headers, _, signed = sign_request("ims", body, settings)
            with httpx.Client(base_url=served, timeout=10) as fresh:
                assert fresh.post(ENDPOINTS["ims"], content=signed, headers=headers).status_code == 200
        assert client.get("/readyz").status_code == 200
        metrics = client.get("/metrics").text
    assert 'ims_worker_shim_requests_total{provider="ims",status="200"} 6.0' in metrics
    assert 'ims_worker_shim_events_total{outcome="duplicate",provider="ims"} 5.0' in metrics
