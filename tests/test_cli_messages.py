"""Messages that say what is wrong, and typos that are errors: each as a user meets it, through the real
commands (issue 25, items 5 and 6)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import clean_env, cli

CELERY = str(Path(sys.executable).with_name("celery"))
SOURCES = "the sources are ims, live.caster, live.record, rtc, tencent, unknown"


def plugin(tmp_path: Path, body: str) -> dict[str, str]:
    (tmp_path / "myplugin.py").write_text("from worker import Event, handler\n\n" + body)
    return {"PYTHONPATH": str(tmp_path), "IMS_WORKER_HANDLER_MODULES": "myplugin"}


def test_a_key_no_subscribed_type_has_suggests_the_fields_they_have(tmp_path: Path) -> None:
    env = plugin(tmp_path, '@handler("live.record.*", key="MediaId")\ndef f(event: Event) -> None: ...\n')
    done = cli("handlers", "list", env=env, cwd=tmp_path)
    assert done.returncode == 2
    assert "key='MediaId' names no field" in done.stderr
    assert "fields all of them have: 'app', 'domain', 'stream'" in done.stderr
    assert "such as 'MediaId'" not in done.stderr
    assert "must be importable" not in done.stderr  # the module imported fine


def test_a_handler_without_parameters_is_told_what_it_lacks(tmp_path: Path) -> None:
    env = plugin(tmp_path, '@handler("ims.ProduceMediaComplete")\ndef nothing() -> None: ...\n')
    done = cli("handlers", "list", env=env, cwd=tmp_path)
    assert done.returncode == 2
    assert "handler myplugin:nothing takes no positional argument" in done.stderr
    assert "def nothing(event: Event) -> None" in done.stderr
    assert "too many" not in done.stderr and "must be importable" not in done.stderr


def test_an_unknown_type_is_not_blamed_on_the_import(tmp_path: Path) -> None:
    env = plugin(tmp_path, '@handler("ims.NoSuchEvent")\ndef f(event: Event) -> None: ...\n')
    done = cli("handlers", "list", env=env, cwd=tmp_path)
    assert done.returncode == 2 and "unknown event type 'ims.NoSuchEvent'" in done.stderr
    assert "must be importable" not in done.stderr
    missing = cli("handlers", "list", env={"IMS_WORKER_HANDLER_MODULES": "notthere"}, cwd=tmp_path)
    assert missing.returncode == 2 and "must be importable" in missing.stderr  # here it is the cause


@pytest.mark.integration
def test_replay_of_a_handler_this_shell_does_not_load_says_how_to_load_it(
    tmp_path: Path, redis_url: str
) -> None:
    done = cli(
        "replay", "--since", "1h", "--handler", "myteam.handlers:notify", "--dry-run",
        env={"IMS_WORKER_BROKER_URL": redis_url}, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "unknown handler myteam.handlers:notify" in done.stderr
    assert "IMS_WORKER_HANDLER_MODULES" in done.stderr and "in this shell too" in done.stderr


def celery_worker(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CELERY, "-A", "worker.app", "worker", "--pool", "solo"],
        cwd=tmp_path,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_celery_started_directly_with_an_invalid_setting_says_so_in_one_line(tmp_path: Path) -> None:
    done = celery_worker(tmp_path, {"IMS_WORKER_TASK_MAX_ATTEMPTS": "abc"})
    assert done.returncode == 2
    assert "ims-worker: configuration error: 1 invalid setting" in done.stderr
    assert "IMS_WORKER_TASK_MAX_ATTEMPTS" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_a_queue_route_for_no_source_is_an_error_naming_the_sources(tmp_path: Path) -> None:
    env = {
        "IMS_WORKER_QUEUE_ROUTES": '{"rtcx": "realtime"}',
        "IMS_WORKER_BROKER_URL": "redis://127.0.0.1:1/0",
    }
    checked = cli("check", env=env, cwd=tmp_path)
    assert checked.returncode == 1
    assert f"FAIL  providers: IMS_WORKER_QUEUE_ROUTES names 'rtcx', which is not a source; {SOURCES}" in (
        checked.stdout
    )
    worker = celery_worker(tmp_path, env)
    assert worker.returncode == 2 and "names 'rtcx', which is not a source" in worker.stderr
    assert "Traceback" not in worker.stdout + worker.stderr


def test_events_recent_with_an_unknown_source_is_an_error_not_an_empty_answer(tmp_path: Path) -> None:
    done = cli("events", "recent", "--source", "foo", cwd=tmp_path)
    assert done.returncode == 2
    assert (
        "--source 'foo' is not a source; sources: ims, live.caster, live.record, rtc, tencent" in done.stderr
    )


@pytest.mark.integration
def test_check_says_when_a_configuration_receives_nothing(tmp_path: Path, redis_url: str) -> None:
    done = cli("check", env={"IMS_WORKER_BROKER_URL": redis_url}, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "warn  inputs: this configuration receives nothing" in done.stdout
    assert done.stdout.rstrip().endswith("all checks passed, but nothing would be received")
    keyed = {"IMS_WORKER_BROKER_URL": redis_url, "IMS_WORKER_IMS_CALLBACK_KEY": "k-7f3kq9z2-callback"}
    armed = cli("check", env=keyed, cwd=tmp_path)
    assert "receives nothing" not in armed.stdout
