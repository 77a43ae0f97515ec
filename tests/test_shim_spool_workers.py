"""``ims-worker shim --workers 2`` with the spool: each uvicorn worker process owns a file of its own, and
the file of a worker killed with kill -9 is adopted by a live process and drained. Real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest
import redis

from tests.celery_worker import wait_until
from tests.chaos.payloads import unique_payload
from tests.servers import RedisServer, free_port, is_queue, stop_process
from worker.shim import ENDPOINTS, sign_request
from worker.shim.spooldir import SpoolDir
from worker.shim.spoolfile import summarize

pytestmark = pytest.mark.integration

IMS_WORKER = str(Path(sys.executable).with_name("ims-worker"))
REPO_ROOT = Path(__file__).resolve().parent.parent
KEY = "workers-spool-key-0123456789"


def queued(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return sum(client.llen(k) for k in client.scan_iter() if is_queue(client, k))
    finally:
        client.close()


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def entries(spool: Path) -> dict[int, int]:
    """pid in the file name -> requests held."""
    return {int(p.stem.split("-")[1]): summarize(p)[0] for p in spool.glob("spool-*.db")}


def test_each_worker_owns_a_file_and_a_killed_ones_file_is_adopted_and_drained(
    tmp_path: Path,
) -> None:
    server = RedisServer(workdir=tmp_path / "redis")
    server.port = free_port()  # nothing listens there yet: Redis is "down" from the start
    spool = tmp_path / "spool"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMS_WORKER_", "PROMETHEUS_"))}
    env.update(
        IMS_WORKER_BROKER_URL=server.url,
        IMS_WORKER_IMS_CALLBACK_KEY=KEY,
        IMS_WORKER_SHIM_PUBLIC_URL=base,
        IMS_WORKER_SHIM_SPOOL_DIR=str(spool),
        IMS_WORKER_LOG_FORMAT="json",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
    )
    (tmp_path / "metrics").mkdir()
    args = [IMS_WORKER, "shim", "--port", str(port), "--workers", "2"]
    log = (tmp_path / "shim.log").open("wb")
    process = subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: len(list(spool.glob("spool-*.lock"))) == 2, timeout=60)
        owners = set(entries(spool))
        assert len(owners) == 2 and owners <= {c.pid for c in psutil.Process(process.pid).children()}
        sent = 0
        for seq in range(40):  # a new connection each: the kernel spreads them over both processes
            body = json.dumps(unique_payload("ims", 8_000_000 + seq)).encode()
            signed = sign_request("ims", body, key=KEY, public_url=base)
            answer = httpx.post(
                base + ENDPOINTS["ims"], content=signed.body, headers=signed.headers, timeout=10
            )
            assert answer.status_code == 200 and answer.json()["spooled"] is True, answer.text
            sent += 1
        held = entries(spool)
        assert sum(held.values()) == sent
        victim = max(held, key=lambda pid: held[pid])  # the process holding the most
        os.kill(victim, signal.SIGKILL)
        # Its file is taken over by a live process (a restarted worker at its start, or the sibling's scan).
        directory = SpoolDir(spool)
        victim_file = next(p for p in spool.glob(f"spool-{victim}-*.db"))
        wait_until(lambda: gone(victim), timeout=30)
        wait_until(lambda: directory.locked(victim_file), timeout=30)
        server.start()
        wait_until(lambda: queued(server.url) == sent, timeout=60)
        wait_until(lambda: not victim_file.exists(), timeout=30)  # adopted, drained, removed
        assert sum(entries(spool).values()) == 0
        # The killed process's per-process spool gauges left /metrics with it (its file was adopted).
        metrics = httpx.get(base + "/metrics", timeout=10).text
        gauges = [line for line in metrics.splitlines() if line.startswith("ims_worker_shim_spool_entries{")]
        assert gauges and not any(f'pid="{victim}"' in line for line in gauges), gauges
    finally:
        stop_process(process, timeout=20)
        log.close()
        server.stop()
    output = (tmp_path / "shim.log").read_text()
    assert "shim.spool.adopted" in output and f'"previous_pid":{victim}' in output.replace(" ", "")
    assert "Traceback" not in output
