"""Credential sources: the emulator's STS checks through the real SDK, and ``ChainCredentials`` around the
real ``alibabacloud-credentials`` URI provider (refresh failures, recovery, no secret in any log line)."""

from __future__ import annotations

import json
import logging
import threading
import time
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import structlog
from alibabacloud_credentials.provider.oidc import OIDCRoleArnCredentialsProvider
from alibabacloud_credentials.provider.uri import URLCredentialsProvider
from mns.account import Account
from mns.auth import StaticCredentialsProvider
from mns.mns_exception import MNSServerException
from mns.queue import Message

from tests.cli import cli
from tests.mns_emulator import DEFAULT_QUEUE
from tests.sts_standin import STS_HOST, sts_standin
from worker.devtools.mns_emulator import MnsEmulator
from worker.mns.credentials import (
    ChainCredentials,
    CredentialsUnavailable,
    ExplicitCredentials,
    describe_source,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def emulator() -> Iterator[MnsEmulator]:
    with MnsEmulator(queues=[DEFAULT_QUEUE]) as running:
        yield running


def attributes_with(emulator: MnsEmulator, key_id: str, secret: str, token: str) -> Any:
    provider = StaticCredentialsProvider(key_id, secret, token)
    account = Account(emulator.endpoint, credentials_provider=provider)
    try:
        with warnings.catch_warnings():  # the SDK warns about counters it sets itself
            warnings.simplefilter("ignore", DeprecationWarning)
            account.get_queue(DEFAULT_QUEUE).get_attributes()
        return True
    finally:
        account.mns_client.close_connection()


def refusal(emulator: MnsEmulator, key_id: str, secret: str, token: str) -> str:
    with pytest.raises(MNSServerException) as caught:
        attributes_with(emulator, key_id, secret, token)
    return str(caught.value.type)


def test_emulator_checks_the_security_token_with_the_signature(emulator: MnsEmulator) -> None:
    good = emulator.issue_temporary(60)
    assert attributes_with(emulator, good.key_id, good.secret, good.token)
    assert refusal(emulator, good.key_id, good.secret, "") == "InvalidSecurityToken"
    assert refusal(emulator, good.key_id, good.secret, good.token + "x") == "InvalidSecurityToken"
    assert refusal(emulator, good.key_id, "wrong-secret", good.token) == "SignatureDoesNotMatch"
    assert refusal(emulator, "STS.unknown", good.secret, good.token) == "InvalidAccessKeyId"
    expired = emulator.issue_temporary(0)
    assert refusal(emulator, expired.key_id, expired.secret, expired.token) == "SecurityTokenExpired"
    assert emulator.operations["GetQueueAttributes 403"] == 5


def test_credentials_uri_rotates_on_schedule(emulator: MnsEmulator) -> None:
    emulator.sts.configure(rotate_seconds=0.5, grace_seconds=0.2)
    first = emulator.sts.credentials_uri()
    assert emulator.sts.credentials_uri() == first  # same credential within its period
    time.sleep(0.6)
    second = emulator.sts.credentials_uri()
    assert second["AccessKeyId"] != first["AccessKeyId"] and second["Code"] == "Success"
    old = emulator.sts.lookup(first["AccessKeyId"])
    assert old is not None and old.expires_at == pytest.approx(old.issued_at + 0.7)


def test_refresh_failure_keeps_valid_credentials_logs_once_and_recovers(emulator: MnsEmulator) -> None:
    # The library refreshes a credential after 1 s (rotate 1 s, no grace; reported expiry 15 min later).
    emulator.sts.configure(rotate_seconds=1.0, grace_seconds=0.0)
    source = ChainCredentials(URLCredentialsProvider(uri=emulator.credentials_uri))
    with structlog.testing.capture_logs() as logs:
        first = source.current()
        emulator.stop()  # the credentials server is down: every refresh fails
        time.sleep(1.2)
        during = [source.current() for _ in range(20)]
        emulator.start()
        deadline = time.monotonic() + 10
        while source.current().key_id == first.key_id and time.monotonic() < deadline:
            time.sleep(0.1)
        after = source.current()
    assert all(snapshot == first for snapshot in during)  # still valid: kept, nothing fails
    assert after.key_id != first.key_id and after.source == "credentials URI (ALIBABA_CLOUD_CREDENTIALS_URI)"
    events = [entry["event"] for entry in logs]
    assert events.count("mns.credentials.refresh_failed") == 1  # once per incident
    assert events.count("mns.credentials.recovered") == 1
    assert "secret" not in json.dumps(logs, default=str).lower()
    failed = next(entry for entry in logs if entry["event"] == "mns.credentials.refresh_failed")
    assert failed["using_cached_until"] and "Connection refused" in failed["reason"]


class _LeakyCredentialsServer(BaseHTTPRequestHandler):
    """A credentials URI answering an error that quotes a secret (the library repeats whole answers)."""

    def do_GET(self) -> None:
        body = json.dumps({"Code": "Failed", "AccessKeySecret": "leaked-secret-Zq81"}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class _ListHandler(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__()
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_no_credentials_is_one_clear_error_without_the_secret(capfd: pytest.CaptureFixture[str]) -> None:
    # What dictConfig(disable_existing_loggers=False), called by uvicorn and Celery, does to existing loggers.
    logging.getLogger("credentials").disabled = False
    library_records: list[logging.LogRecord] = []
    library_handler = _ListHandler(library_records)
    logging.getLogger("credentials").addHandler(library_handler)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LeakyCredentialsServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}/credentials"
        source = ChainCredentials(URLCredentialsProvider(uri=uri))
        with structlog.testing.capture_logs() as logs, pytest.raises(CredentialsUnavailable) as caught:
            source.current()
    finally:
        logging.getLogger("credentials").removeHandler(library_handler)
        server.shutdown()
        server.server_close()
    message = str(caught.value)
    assert message.startswith("no MNS credentials: IMS_WORKER_MNS_ACCESS_KEY_ID is not set and the Alibaba")
    assert f"error retrieving credentials from {uri}" in message
    captured = capfd.readouterr()
    assert "leaked-secret" not in message + json.dumps(logs) + captured.out + captured.err
    assert library_records == []  # the library's own logger prints raw answers: nothing reaches a handler


def test_sources_are_named_as_operators_know_them() -> None:
    assert describe_source("default/oidc_role_arn").startswith("RRSA/OIDC (ALIBABA_CLOUD_OIDC_TOKEN_FILE")
    assert describe_source("default/ecs_ram_role") == "ECS RAM role (instance metadata service)"
    assert describe_source("default/cli_profile/static_ak").startswith("Alibaba Cloud CLI profile")
    explicit = ExplicitCredentials("id", "secret-value", "")
    assert explicit.name.startswith("settings (IMS_WORKER_MNS_ACCESS_KEY_ID") and not explicit.refreshable
    assert ExplicitCredentials("id", "s", "token").static_token


def test_rrsa_environment_makes_the_default_chain_call_sts(
    emulator: MnsEmulator, redis_url: str, tmp_path: Path
) -> None:
    """RRSA as ACK sets it up (role, provider, token file; nothing else), through the real ``ims-worker
    check``: the chain picks its OIDC provider and sends AssumeRoleWithOIDC to STS of the region. The call
    cannot be completed locally (tests/sts_standin.py says why): check fails with one line, no secret, no
    traceback."""
    with sts_standin(emulator, tmp_path) as sts:
        env = {
            **sts.env,
            **sts.proxy_env,
            "HOME": str(tmp_path),
            "IMS_WORKER_BROKER_URL": redis_url,
            "IMS_WORKER_MNS_ENDPOINT": emulator.endpoint,
            "IMS_WORKER_MNS_QUEUES": DEFAULT_QUEUE,
        }
        done = cli("check", env=env, cwd=tmp_path)
    assert sts.tunnels and set(sts.tunnels) == {f"{STS_HOST}:443"}, sts.tunnels  # the chain chose RRSA
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("FAIL  mns credentials")]
    assert line.startswith(
        "FAIL  mns credentials: no MNS credentials: IMS_WORKER_MNS_ACCESS_KEY_ID is not set and the Alibaba "
        "Cloud default credentials chain found none"
    ), line
    assert "OIDCRoleArnCredentialsProvider" in line and "Traceback" not in done.stdout + done.stderr
    assert "standin-oidc-token" not in done.stdout + done.stderr  # the OIDC token is a credential too


def test_rrsa_oidc_exchange_signs_mns_requests_and_refreshes(
    emulator: MnsEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The library's OIDC provider against the stand-in, end to end: token file read, AssumeRoleWithOIDC over
    TLS, STS credentials signing real SDK requests the emulator verifies, a refresh when they go stale."""
    # STS credentials for 15 min + 2 s: the library refreshes 15 min before expiry, so after 2 s.
    with sts_standin(emulator, tmp_path, lifetime=902) as sts:
        monkeypatch.setenv("SSL_CERT_FILE", sts.cert_file)  # Tea's TLS context loads the default store
        provider = OIDCRoleArnCredentialsProvider(  # the library read the environment at import: pass it
            role_arn=sts.env["ALIBABA_CLOUD_ROLE_ARN"],
            oidc_provider_arn=sts.env["ALIBABA_CLOUD_OIDC_PROVIDER_ARN"],
            oidc_token_file_path=sts.env["ALIBABA_CLOUD_OIDC_TOKEN_FILE"],
            sts_endpoint=sts.endpoint,
        )
        source = ChainCredentials(provider)
        account = Account(emulator.endpoint, credentials_provider=source)
        queue = account.get_queue(DEFAULT_QUEUE)
        queue.set_encoding(False)
        try:
            queue.send_message(Message("signed with STS credentials from RRSA"))
            first = source.current()
            time.sleep(3)
            assert queue.receive_message(0).message_body == "signed with STS credentials from RRSA"
            second = source.current()
        finally:
            account.mns_client.close_connection()
    assert first.source.startswith("RRSA/OIDC") and first.temporary
    assert second.key_id != first.key_id  # refreshed through a second AssumeRoleWithOIDC
    assert len(sts.calls) == 2 and all(call["Action"] == "AssumeRoleWithOIDC" for call in sts.calls)
    assert emulator.operations["SendMessage 201"] == 1 and emulator.operations["ReceiveMessage 200"] == 1
