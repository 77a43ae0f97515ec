"""Each source of the default chain, through the real ``ims-worker check`` with no MNS AccessKey setting:
the line names the source, the queue answers to requests signed with what that source gave.

RRSA/OIDC and the credentials URI have their own tests (test_mns_credentials.py, test_mns_rotation.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli import cli
from tests.metadata_standin import CREDENTIALS_PATH, METADATA_HOST, ROLE, metadata_standin
from tests.mns_emulator import DEFAULT_QUEUE
from worker.devtools.mns_emulator import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, MnsEmulator

pytestmark = pytest.mark.integration


@pytest.fixture
def emulator() -> Iterator[MnsEmulator]:
    with MnsEmulator(queues=[DEFAULT_QUEUE]) as running:
        yield running


def check(emulator: MnsEmulator, redis_url: str, home: Path, **env: str) -> list[str]:
    settings = {
        "HOME": str(home),
        "IMS_WORKER_BROKER_URL": redis_url,
        "IMS_WORKER_MNS_ENDPOINT": emulator.endpoint,
        "IMS_WORKER_MNS_QUEUES": DEFAULT_QUEUE,
        **env,
    }
    done = cli("check", env=settings, cwd=home)
    lines = [line for line in done.stdout.splitlines() if line[6:].startswith("mns")]
    assert (
        lines[1] == f"ok    mns queue {DEFAULT_QUEUE} at {emulator.endpoint}: exists (0 messages waiting)"
    ), done
    return lines


def test_environment_access_key(emulator: MnsEmulator, redis_url: str, tmp_path: Path) -> None:
    lines = check(
        emulator,
        redis_url,
        tmp_path,
        ALIBABA_CLOUD_ACCESS_KEY_ID=DEFAULT_ACCESS_KEY_ID,
        ALIBABA_CLOUD_ACCESS_KEY_SECRET=DEFAULT_ACCESS_KEY_SECRET,
    )
    assert lines[0] == (
        "ok    mns credentials: environment (ALIBABA_CLOUD_ACCESS_KEY_ID/ALIBABA_CLOUD_ACCESS_KEY_SECRET), "
        "long-lived AccessKey"
    )


def test_environment_sts_token(emulator: MnsEmulator, redis_url: str, tmp_path: Path) -> None:
    sts = emulator.issue_temporary(600)
    env = {
        "ALIBABA_CLOUD_ACCESS_KEY_ID": sts.key_id,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": sts.secret,
        "ALIBABA_CLOUD_SECURITY_TOKEN": sts.token,
    }
    lines = check(emulator, redis_url, tmp_path, **env)
    assert lines[0].startswith("ok    mns credentials: environment (") and "temporary (STS token)" in lines[0]


def test_cli_profile(emulator: MnsEmulator, redis_url: str, tmp_path: Path) -> None:
    profile = {"name": "default", "mode": "AK", "access_key_id": DEFAULT_ACCESS_KEY_ID,
               "access_key_secret": DEFAULT_ACCESS_KEY_SECRET}  # fmt: skip
    (tmp_path / ".aliyun").mkdir()
    (tmp_path / ".aliyun" / "config.json").write_text(
        json.dumps({"current": "default", "profiles": [profile]})
    )
    lines = check(emulator, redis_url, tmp_path)
    assert lines[0] == (
        "ok    mns credentials: Alibaba Cloud CLI profile (~/.aliyun/config.json), long-lived AccessKey"
    )


def test_credentials_file(emulator: MnsEmulator, redis_url: str, tmp_path: Path) -> None:
    (tmp_path / ".alibabacloud").mkdir()
    (tmp_path / ".alibabacloud" / "credentials.ini").write_text(
        f"[default]\ntype = access_key\naccess_key_id = {DEFAULT_ACCESS_KEY_ID}\n"
        f"access_key_secret = {DEFAULT_ACCESS_KEY_SECRET}\n"
    )
    lines = check(emulator, redis_url, tmp_path)
    assert lines[0].startswith("ok    mns credentials: credentials file (~/.alibabacloud/credentials.ini")


def test_ecs_ram_role(emulator: MnsEmulator, redis_url: str, tmp_path: Path) -> None:
    """The ECS RAM role as the chain finds it on an instance: IMDSv2 token, role name, STS credentials."""
    with metadata_standin(emulator) as imds:
        lines = check(emulator, redis_url, tmp_path, **imds.env)
    assert lines[0].startswith("ok    mns credentials: ECS RAM role (instance metadata service), temporary")
    asked = [(method, url) for method, url, _ in imds.requests]
    assert ("PUT", f"http://{METADATA_HOST}/latest/api/token") in asked
    assert ("GET", f"http://{METADATA_HOST}{CREDENTIALS_PATH}{ROLE}") in asked
    assert emulator.operations["GetQueueAttributes 200"] == 1
