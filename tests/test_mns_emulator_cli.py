"""``ims-worker emulator mns`` as a real subprocess, used through the real aliyun-mns-sdk."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mns.account import Account
from mns.auth import StaticCredentialsProvider
from mns.mns_exception import MNSServerException
from mns.queue import Message

from tests.mns_emulator import (
    DEFAULT_QUEUE,
    SubprocessEmulator,
    emulator_command,
    running_emulator,
)
from worker.devtools.mns_emulator import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET, FaultSettings

pytestmark = pytest.mark.integration

IMS_WORKER = str(Path(sys.executable).with_name("ims-worker"))


def test_console_script_serves_the_sdk_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    command = emulator_command(queues=["ice-callback-cli"], seed=3, entry=(IMS_WORKER, "emulator"))
    child = SubprocessEmulator(command, tmp_path, DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET)
    child.start()
    try:
        queue = child.queue("ice-callback-cli")
        queue.batch_send_message([Message(f'{{"n": {i}}}') for i in range(5)])
        received = queue.batch_receive_message(16, 1)
        assert sorted(m.message_body for m in received) == [f'{{"n": {i}}}' for i in range(5)]
        queue.batch_delete_message([m.receipt_handle for m in received])
        stats = child.stats("ice-callback-cli")
        assert (stats.sent, stats.deleted, stats.total) == (5, 5, 0)
        assert child.operations()["BatchDeleteMessage 204"] == 1
        child.close_clients()

        assert child.process is not None
        child.process.send_signal(signal.SIGTERM)
        assert child.process.wait(timeout=10) == 0
    finally:
        child.close_clients()
        child.stop()


def test_fault_flags_apply_and_can_be_changed_at_runtime() -> None:
    with running_emulator(faults=FaultSettings(error_rate=1.0), in_process=False) as mns:
        queue = mns.queue()
        with pytest.raises(MNSServerException) as exc:
            queue.send_message(Message("refused"))
        assert exc.value.type in ("InternalError", "ServiceUnavailable")
        assert mns.injected()["error"] == 1

        assert mns.set_faults(error_rate=0.0, latency_ms=10).latency_ms == 10
        queue.send_message(Message("accepted"))
        mns.send(DEFAULT_QUEUE, ["preloaded"], priority=1)
        assert queue.receive_message(0).message_body == "preloaded"
        assert mns.stats().total == 2
        assert mns.create_queue("ice-callback-more", visibility_timeout=5) is True


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker.cli.emulator", "mns", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_out_of_range_rate_is_a_usage_error() -> None:
    result = _run_cli("--error-rate", "1.5")
    assert result.returncode == 2
    assert "a rate is between 0 and 1" in result.stderr


def test_invalid_queue_name_is_a_configuration_error() -> None:
    result = _run_cli("--port", "0", "--queue", "not_valid!")
    assert result.returncode == 2
    assert "configuration error" in result.stderr and "InvalidQueueName" in result.stderr


def test_port_in_use_is_a_configuration_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = _run_cli("--port", str(busy.getsockname()[1]))
    assert result.returncode == 2
    assert "cannot listen" in result.stderr


def test_sts_flags_rotate_the_credentials_uri_and_refuse_old_tokens(tmp_path: Path) -> None:
    command = emulator_command(queues=[DEFAULT_QUEUE], entry=(IMS_WORKER, "emulator"))
    command += ["--sts-rotate-seconds", "0.5", "--sts-grace-seconds", "0"]
    child = SubprocessEmulator(command, tmp_path, DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET)
    child.start()
    try:
        first = child._admin("GET", "sts/credentials")
        assert child._admin("GET", "sts")["sts"]["rotate_seconds"] == 0.5
        deadline = time.monotonic() + 10
        second = first
        while second["AccessKeyId"] == first["AccessKeyId"] and time.monotonic() < deadline:
            time.sleep(0.1)
            second = child._admin("GET", "sts/credentials")
        assert second["AccessKeyId"] != first["AccessKeyId"]
        for credential, outcome in ((second, None), (first, "SecurityTokenExpired")):
            provider = StaticCredentialsProvider(
                credential["AccessKeyId"], credential["AccessKeySecret"], credential["SecurityToken"]
            )
            account = Account(child.endpoint, credentials_provider=provider)
            try:
                if outcome is None:
                    account.get_queue(DEFAULT_QUEUE).send_message(Message("signed with the new token"))
                else:
                    with pytest.raises(MNSServerException) as refused:
                        account.get_queue(DEFAULT_QUEUE).send_message(Message("old token"))
                    assert refused.value.type == outcome
            finally:
                account.mns_client.close_connection()
        assert child.operations()["SendMessage 201"] == 1 and child.operations()["SendMessage 403"] == 1
    finally:
        child.stop()
