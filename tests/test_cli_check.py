"""``ims-worker check``, ``handlers list``, and commands refusing to start when handlers cannot load."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli import cli
from tests.mns_emulator import DEFAULT_QUEUE, EmulatorHandle, running_emulator
from tests.servers import free_port
from worker.devtools.mns_emulator.app import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET

pytestmark = pytest.mark.integration

BROKEN = "tests.plugins.broken"


@pytest.fixture
def emulator() -> Iterator[EmulatorHandle]:
    with running_emulator() as handle:
        yield handle


def mns_env(emulator: EmulatorHandle, queues: str) -> dict[str, str]:
    return {
        "IMS_WORKER_MNS_ENDPOINT": emulator.endpoint,
        "IMS_WORKER_MNS_ACCESS_KEY_ID": DEFAULT_ACCESS_KEY_ID,
        "IMS_WORKER_MNS_ACCESS_KEY_SECRET": DEFAULT_ACCESS_KEY_SECRET,
        "IMS_WORKER_MNS_QUEUES": queues,
    }


def test_check_passes_on_a_working_setup(tmp_path: Path, redis_url: str, emulator: EmulatorHandle) -> None:
    env = {
        "IMS_WORKER_BROKER_URL": redis_url,
        "IMS_WORKER_IMS_CALLBACK_KEY": "a-good-key-for-checking-1234",
        **mns_env(emulator, DEFAULT_QUEUE),
    }
    done = cli("check", env=env, cwd=tmp_path)
    assert done.returncode == 0, done
    out = done.stdout
    assert "ok    settings" in out and "ok    handlers: 6 modules, 6 subscriptions" in out
    assert "handlers.ims:log_ims_event  <- ims.*  [29 types" in out
    assert f"ok    broker {redis_url}: answers PING" in out
    assert "ok    shim keys: endpoints served: ims" in out
    assert f"ok    mns queue {DEFAULT_QUEUE} at {emulator.endpoint}: exists" in out
    assert out.rstrip().endswith("all checks passed")


def test_check_reports_every_problem_and_exits_1(tmp_path: Path, emulator: EmulatorHandle) -> None:
    dead = f"redis://:pw-77@127.0.0.1:{free_port()}/0"
    env = {
        "IMS_WORKER_BROKER_URL": dead,
        "IMS_WORKER_HANDLER_MODULES": BROKEN,
        "IMS_WORKER_IMS_CALLBACK_KEY": "changeme",
        **mns_env(emulator, f"{DEFAULT_QUEUE},no-such-queue"),
    }
    done = cli("check", env=env, cwd=tmp_path)
    assert done.returncode == 1, done
    out = done.stdout
    assert "FAIL  handlers: cannot load handlers: unknown event type 'ims.NoSuchEvent'" in out, out
    assert "FAIL  broker redis://[REDACTED]@127.0.0.1" in out and "pw-77" not in out
    assert f"ok    mns queue {DEFAULT_QUEUE}" in out
    assert (
        "FAIL  mns queue no-such-queue" in out
        and "queue 'no-such-queue' does not exist (QueueNotExist) at" in out
    )
    assert "FAIL  shim keys: IMS_WORKER_IMS_CALLBACK_KEY (key 1 of 1) is a placeholder" in out
    assert out.rstrip().endswith("4 check(s) failed")


def test_handlers_list_shows_what_runs_for_which_type(tmp_path: Path) -> None:
    env = {"IMS_WORKER_HANDLER_MODULES": "tests.plugins.asyncplugin"}
    done = cli("handlers", "list", env=env, cwd=tmp_path)
    assert done.returncode == 0, done
    assert "7 subscriptions" in done.stdout
    assert "tests.plugins.asyncplugin:async_ims  <- ims.*  [29 types" in done.stdout
    one = cli("handlers", "list", "--type", "ims.FileUploadComplete", env=env, cwd=tmp_path)
    assert one.stdout.splitlines() == [
        "ims.FileUploadComplete: 2 handlers, in this order",
        "  1. handlers.ims:log_ims_event  <- ims.*",
        "  2. tests.plugins.asyncplugin:async_ims  <- ims.*",
    ]
    rows = json.loads(cli("handlers", "list", "--json", cwd=tmp_path).stdout)
    assert {r["handler"] for r in rows} >= {"handlers.rtc:log_rtc_event"}
    assert next(r for r in rows if r["pattern"] == "rtc.*")["event_types"] == [
        "rtc.ChannelEvent",
        "rtc.UserEvent",
    ]


@pytest.mark.parametrize("command", [["handlers", "list"], ["run"], ["shim"], ["consume", "--queue", "q"]])
def test_commands_refuse_to_start_when_handlers_cannot_load(tmp_path: Path, command: list[str]) -> None:
    env = {
        "IMS_WORKER_HANDLER_MODULES": f"{BROKEN}",
        "IMS_WORKER_MNS_ENDPOINT": "http://127.0.0.1:9",
        "IMS_WORKER_MNS_ACCESS_KEY_ID": "id",
        "IMS_WORKER_MNS_ACCESS_KEY_SECRET": "mns-secret-7f3kq9z2",
        "IMS_WORKER_SHIM_PORT": str(free_port()),
        "IMS_WORKER_IMS_CALLBACK_KEY": "a-real-looking-callback-key-4711",
    }
    done = cli(*command, env=env, cwd=tmp_path, timeout=30)
    assert done.returncode == 2, done
    assert "cannot load handlers: unknown event type 'ims.NoSuchEvent'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / ".ims-worker").exists()  # run started nothing


def test_a_missing_module_says_it_must_be_importable(tmp_path: Path) -> None:
    done = cli("handlers", "list", env={"IMS_WORKER_HANDLER_MODULES": "myteam.handlers"}, cwd=tmp_path)
    assert done.returncode == 2
    assert "cannot import handler module 'myteam.handlers'" in done.stderr
    assert "PYTHONPATH" in done.stderr


def test_run_stops_everything_when_the_worker_cannot_load_its_handlers(tmp_path: Path) -> None:
    """The parent's check passes, the Celery child exits 2: no crash loop, no inputs left running."""
    env = {
        "IMS_WORKER_HANDLER_MODULES": "tests.plugins.workeronly",
        "IMS_WORKER_SHIM_PORT": str(free_port()),
        "IMS_WORKER_CONSUMER_METRICS_PORT": "0",
        "IMS_WORKER_LOG_FORMAT": "json",
    }
    began = time.monotonic()
    done = cli("run", env=env, cwd=tmp_path, timeout=90)
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr
    assert time.monotonic() - began < 60
    assert "vendor_sdk" in done.stdout
    assert "the worker exited 2 (a configuration error" in done.stderr
    assert (
        '"supervisor.child.restart_scheduled"' not in done.stdout
        and "supervisor.child.restart_scheduled" not in done.stdout
    )


def test_a_busy_port_fails_fast_with_the_cause(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        for command in (["shim", "--port", str(port)], ["run", "--demo"]):
            began = time.monotonic()
            env = {"IMS_WORKER_SHIM_PORT": str(port), "IMS_WORKER_IMS_CALLBACK_KEY": "a-callback-key-4711"}
            done = cli(*command, env=env, cwd=tmp_path, timeout=30)
            assert done.returncode == 2, done
            assert f"port {port} on 127.0.0.1 is already in use" in done.stderr
            # Before, run --demo restarted the failing child with delays up to 30 s and never stopped; `run`
            # starts Redis and the emulator first, which took 10.4 s once on a loaded CI machine.
            assert time.monotonic() - began < 20
