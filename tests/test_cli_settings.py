"""Settings mistakes, as the real CLI reports them: every problem at once, by variable name, exit 2."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.cli import cli

BAD = {
    "IMS_WORKER_MNS_WAIT_SECONDS": "99",
    "IMS_WORKER_MNS_POLLERS_PER_QUEUE": "x",
    "IMS_WORKER_BROKER_URL": "foo://ops:hunter2-secret@broker:1234/0",
    "IMS_WORKER_QUEUE_ROUTES": "{bad",
}
COMMANDS = [
    ["dlq", "list"],
    ["shim"],
    ["run"],
    ["consume"],
    ["send", "x.json", "--http", "http://127.0.0.1:9"],
    ["check"],
    ["handlers", "list"],
]


def assert_settings_error(done: subprocess.CompletedProcess[str], *names: str) -> str:
    assert done.returncode == 2, done
    err = done.stderr
    assert "Traceback" not in err, err
    assert err.startswith("ims-worker: configuration error:"), err
    for name in names:
        assert name in err, (name, err)
    return err


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_every_command_lists_every_invalid_setting_at_once(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / ".env").write_text("IMS_WORKER_DEDUPE_TTL_SECONDS=[1]\n")
    (tmp_path / "x.json").write_text("{}")
    err = assert_settings_error(cli(*command, env=BAD, cwd=tmp_path), *BAD, "IMS_WORKER_DEDUPE_TTL_SECONDS")
    assert "5 invalid settings" in err
    assert "less than or equal to 30 (got '99')" in err
    assert "got '{bad'" in err and "must be a JSON object" in err
    assert "hunter2-secret" not in err and "foo://[REDACTED]@broker:1234/0" in err


def test_an_unreadable_env_file_is_a_settings_error(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"IMS_WORKER_LOG_LEVEL=INFO\n\xff\xfe\n")
    assert_settings_error(cli("dlq", "list", cwd=tmp_path), ".env: cannot be read")


def test_a_broker_url_that_is_no_url_is_an_error_not_localhost(tmp_path: Path) -> None:
    done = cli("dlq", "list", env={"IMS_WORKER_BROKER_URL": "notaurl"}, cwd=tmp_path)
    err = assert_settings_error(done, "IMS_WORKER_BROKER_URL: must be a broker URL", "(got 'notaurl')")
    assert "dead letters" not in done.stdout
    assert "1 invalid setting:" in err


def test_a_non_redis_broker_needs_redis_url(tmp_path: Path) -> None:
    env = {"IMS_WORKER_BROKER_URL": "amqp://guest:pw-42@rabbit:5672//"}
    err = assert_settings_error(cli("dlq", "list", env=env, cwd=tmp_path), "IMS_WORKER_REDIS_URL: required")
    assert "pw-42" not in err
    env["IMS_WORKER_REDIS_URL"] = "http://cache:6379"
    done = cli("dlq", "list", env=env, cwd=tmp_path)
    assert_settings_error(done, "IMS_WORKER_REDIS_URL: must be a Redis URL")


def test_secret_values_are_masked(tmp_path: Path) -> None:
    env = {"IMS_WORKER_FLOWER_PORT": "0", "IMS_WORKER_SIGNATURE_WINDOW_SECONDS": "soon"}
    err = assert_settings_error(cli("dlq", "list", env=env, cwd=tmp_path), "IMS_WORKER_FLOWER_PORT")
    assert "(got '0')" in err and "(got 'soon')" in err


def test_cross_field_rules_name_both_variables(tmp_path: Path) -> None:
    env = {"IMS_WORKER_MNS_SOCKET_TIMEOUT": "5", "IMS_WORKER_TASK_TIME_LIMIT": "10"}
    err = assert_settings_error(cli("dlq", "list", env=env, cwd=tmp_path), "2 invalid settings")
    assert "IMS_WORKER_MNS_SOCKET_TIMEOUT (5.0) must be longer than IMS_WORKER_MNS_WAIT_SECONDS (20" in err
    assert "IMS_WORKER_TASK_TIME_LIMIT (10.0) must be longer than IMS_WORKER_TASK_SOFT_TIME_LIMIT" in err


def test_consume_names_every_missing_mns_setting_at_once(tmp_path: Path) -> None:
    err = assert_settings_error(
        cli("consume", cwd=tmp_path),
        "IMS_WORKER_MNS_ENDPOINT: required by ims-worker consume, not set",
        "IMS_WORKER_MNS_QUEUES",
    )
    # No AccessKey is no error: the default credentials chain signs (RRSA, ECS RAM role, URI...).
    assert "2 invalid settings" in err and "IMS_WORKER_MNS_ACCESS_KEY" not in err


def test_consume_refuses_half_an_access_key_pair(tmp_path: Path) -> None:
    env = {
        "IMS_WORKER_MNS_ENDPOINT": "https://1.mns.cn-shanghai.aliyuncs.com",
        "IMS_WORKER_MNS_ACCESS_KEY_ID": "LTAI-test-id",
        "IMS_WORKER_MNS_QUEUES": "ice-callback",
    }
    err = assert_settings_error(
        cli("consume", env=env, cwd=tmp_path),
        "IMS_WORKER_MNS_ACCESS_KEY_SECRET: required by ims-worker consume, not set",
    )
    assert "1 invalid setting" in err


def test_consume_refuses_a_placeholder_secret_as_if_it_were_missing(tmp_path: Path) -> None:
    env = {
        "IMS_WORKER_MNS_ENDPOINT": "https://1.mns.cn-shanghai.aliyuncs.com",
        "IMS_WORKER_MNS_ACCESS_KEY_ID": "LTAI-test-id",
        "IMS_WORKER_MNS_ACCESS_KEY_SECRET": "change-me",
        "IMS_WORKER_MNS_QUEUES": "ice-callback",
    }
    err = assert_settings_error(
        cli("consume", env=env, cwd=tmp_path),
        "IMS_WORKER_MNS_ACCESS_KEY_SECRET: required by ims-worker consume, but it is a placeholder",
    )
    assert "1 invalid setting" in err
