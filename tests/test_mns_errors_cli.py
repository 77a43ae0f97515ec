"""Every MNS refusal an operator meets, through the real ``ims-worker`` and the emulator, with the exact line.

``ims-worker check`` runs GetQueueAttributes (reads, changes nothing) per configured queue and prints one
line per queue; ``consume`` stops with the same line when the cause is one no retry can fix.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.celery_worker import wait_until
from tests.cli import cli
from tests.consumer_run import consumer_env, running_consumer
from tests.mns_emulator import DEFAULT_QUEUE, InProcessEmulator, running_emulator
from tests.servers import free_port
from worker.devtools.mns_emulator import MnsEmulator
from worker.devtools.mns_emulator.app import DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET

pytestmark = pytest.mark.integration
KEY = "emul****y-id"  # DEFAULT_ACCESS_KEY_ID as the lines show it
SETTINGS_SOURCE = "settings (IMS_WORKER_MNS_ACCESS_KEY_ID/IMS_WORKER_MNS_ACCESS_KEY_SECRET)"


@pytest.fixture
def mns() -> Iterator[InProcessEmulator]:
    with running_emulator() as handle:
        assert isinstance(handle, InProcessEmulator)
        yield handle


def env_for(endpoint: str, redis_url: str, home: Path, **extra: str) -> dict[str, str]:
    return {
        "IMS_WORKER_BROKER_URL": redis_url,
        "IMS_WORKER_MNS_ENDPOINT": endpoint,
        "IMS_WORKER_MNS_ACCESS_KEY_ID": DEFAULT_ACCESS_KEY_ID,
        "IMS_WORKER_MNS_ACCESS_KEY_SECRET": DEFAULT_ACCESS_KEY_SECRET,
        "IMS_WORKER_MNS_QUEUES": DEFAULT_QUEUE,
        "HOME": str(home),
        **extra,
    }


def mns_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line[6:].startswith("mns")]


def test_check_names_the_source_and_passes(mns: InProcessEmulator, redis_url: str, tmp_path: Path) -> None:
    done = cli("check", env=env_for(mns.endpoint, redis_url, tmp_path), cwd=tmp_path)
    assert mns_lines(done.stdout) == [
        f"ok    mns credentials: {SETTINGS_SOURCE}, long-lived AccessKey",
        f"ok    mns queue {DEFAULT_QUEUE} at {mns.endpoint}: exists (0 messages waiting)",
    ]


def test_access_denied_names_the_ram_action_and_queue(
    mns: InProcessEmulator, redis_url: str, tmp_path: Path
) -> None:
    mns.emulator.deny(DEFAULT_ACCESS_KEY_ID, "GetQueueAttributes")
    done = cli("check", env=env_for(mns.endpoint, redis_url, tmp_path), cwd=tmp_path)
    assert done.returncode == 1
    assert mns_lines(done.stdout)[1] == (
        f"FAIL  mns queue {DEFAULT_QUEUE} at {mns.endpoint}: MNS denied mns:GetQueueAttributes on "
        f"acs:mns:*:*:/queues/{DEFAULT_QUEUE} (AccessDenied) to the RAM identity of AccessKey {KEY} from "
        f"{SETTINGS_SOURCE}: grant it the least-privilege policy in deploy/README.md (RAM console > the user "
        "or role > Grant Permission)"
    )


def test_queue_does_not_exist(mns: InProcessEmulator, redis_url: str, tmp_path: Path) -> None:
    env = env_for(mns.endpoint, redis_url, tmp_path, IMS_WORKER_MNS_QUEUES="ice-callback-typo")
    done = cli("check", env=env, cwd=tmp_path)
    assert mns_lines(done.stdout)[1] == (
        f"FAIL  mns queue ice-callback-typo at {mns.endpoint}: queue 'ice-callback-typo' does not exist "
        "(QueueNotExist) at "
        f"{mns.endpoint} (region *, account *): check IMS_WORKER_MNS_QUEUES for the name and "
        "IMS_WORKER_MNS_ENDPOINT for the queue's region and account (the MNS console shows a queue's "
        "endpoint)"
    )


def test_signature_mismatch(mns: InProcessEmulator, redis_url: str, tmp_path: Path) -> None:
    wrong = "not-the-secret-Zq81"
    env = env_for(mns.endpoint, redis_url, tmp_path, IMS_WORKER_MNS_ACCESS_KEY_SECRET=wrong)
    done = cli("check", env=env, cwd=tmp_path)
    assert mns_lines(done.stdout)[1] == (
        f"FAIL  mns queue {DEFAULT_QUEUE} at {mns.endpoint}: MNS rejected the signature of AccessKey {KEY} "
        f"from {SETTINGS_SOURCE} (SignatureDoesNotMatch): the AccessKey secret is not the one of that "
        "AccessKey id (check IMS_WORKER_MNS_ACCESS_KEY_SECRET or the credentials source), or a proxy altered "
        "the request"
    )
    assert wrong not in done.stdout + done.stderr


def test_time_skew_says_how_far(redis_url: str, tmp_path: Path) -> None:
    # The emulator's clock runs 20 minutes ahead: ours is 20 minutes behind MNS's.
    with MnsEmulator(queues=[DEFAULT_QUEUE], clock_offset_seconds=1200) as emulator:
        done = cli("check", env=env_for(emulator.endpoint, redis_url, tmp_path), cwd=tmp_path)
    assert mns_lines(done.stdout)[1] == (
        f"FAIL  mns queue {DEFAULT_QUEUE} at {emulator.endpoint}: MNS refused the request as expired "
        "(TimeExpired): this machine's clock is 20 min behind MNS's and MNS accepts at most 15 min; "
        "synchronise the clock (chrony/NTP)"
    )


def test_endpoint_unreachable_names_the_endpoint(redis_url: str, tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    done = cli("check", env=env_for(endpoint, redis_url, tmp_path), cwd=tmp_path)
    assert mns_lines(done.stdout)[1] == (
        f"FAIL  mns queue {DEFAULT_QUEUE} at {endpoint}: cannot reach MNS at {endpoint} ([Errno 111] "
        "Connection refused): check IMS_WORKER_MNS_ENDPOINT (a queue's endpoint is https://<account "
        "id>.mns.<region>.aliyuncs.com, in the queue's region), DNS and the network"
    )


def test_region_and_account_come_from_a_real_endpoint_form() -> None:
    from worker.mns.explain import queue_arn, region_and_account  # noqa: PLC0415

    endpoint = "https://1234567890.mns.cn-shanghai-internal.aliyuncs.com"
    assert region_and_account(endpoint) == ("cn-shanghai", "1234567890")
    assert queue_arn(endpoint, "ice-callback-a", "/messages") == (
        "acs:mns:cn-shanghai:1234567890:/queues/ice-callback-a/messages"
    )


STATIC_TOKEN_LINE = (
    "MNS refused the STS token in IMS_WORKER_MNS_SECURITY_TOKEN (SecurityTokenExpired): STS tokens "
    "expire (1 h by default, 12 h at most); unset IMS_WORKER_MNS_ACCESS_KEY_ID, "
    "IMS_WORKER_MNS_ACCESS_KEY_SECRET and IMS_WORKER_MNS_SECURITY_TOKEN so the default chain (RRSA, ECS RAM "
    "role, credentials URI) refreshes them"
)


def static_token_env(mns: InProcessEmulator, redis_url: str, lifetime: float) -> dict[str, str]:
    credential = mns.emulator.issue_temporary(lifetime)
    env = consumer_env(mns, redis_url, DEFAULT_QUEUE)
    env["IMS_WORKER_MNS_ACCESS_KEY_ID"] = credential.key_id
    env["IMS_WORKER_MNS_ACCESS_KEY_SECRET"] = credential.secret
    env["IMS_WORKER_MNS_SECURITY_TOKEN"] = credential.token
    return env


def test_static_token_expired_at_check(mns: InProcessEmulator, redis_url: str, tmp_path: Path) -> None:
    env = static_token_env(mns, redis_url, lifetime=0)
    done = cli("check", env={**env, "HOME": str(tmp_path)}, cwd=tmp_path)
    assert (
        mns_lines(done.stdout)[1] == f"FAIL  mns queue {DEFAULT_QUEUE} at {mns.endpoint}: {STATIC_TOKEN_LINE}"
    )
    assert env["IMS_WORKER_MNS_SECURITY_TOKEN"] not in done.stdout + done.stderr


def test_static_token_expiring_mid_run_stops_with_one_line(mns: InProcessEmulator, redis_url: str) -> None:
    env = static_token_env(mns, redis_url, lifetime=3600)
    env["IMS_WORKER_MNS_POLLERS_PER_QUEUE"] = "3"
    with running_consumer(env) as consumer:
        wait_until(lambda: "mns.consumer.started" in consumer.output(), timeout=60)  # ran with the token
        mns.emulator.sts.expire_all()  # the token's hour is over
        assert consumer.process.wait(timeout=30) == 2
        output = consumer.output()
    assert [line for line in output.splitlines() if "IMS_WORKER_MNS_SECURITY_TOKEN" in line] == [
        line for line in output.splitlines() if '"mns.consumer.fatal"' in line
    ]
    assert output.count(STATIC_TOKEN_LINE) == 1
    assert env["IMS_WORKER_MNS_SECURITY_TOKEN"] not in output
    assert env["IMS_WORKER_MNS_ACCESS_KEY_SECRET"] not in output


@pytest.mark.parametrize(
    ("operation", "action", "resource"),
    [
        ("BatchReceiveMessage", "mns:ReceiveMessage", "/messages"),
        ("BatchDeleteMessage", "mns:DeleteMessage", "/messages"),
    ],
)
def test_consume_stops_on_a_missing_ram_action_with_one_line(
    mns: InProcessEmulator, redis_url: str, operation: str, action: str, resource: str
) -> None:
    mns.send(DEFAULT_QUEUE, ['{"EventType": "ProduceMediaComplete", "MessageBody": {}}'])
    mns.emulator.deny(DEFAULT_ACCESS_KEY_ID, operation)
    with running_consumer(consumer_env(mns, redis_url, DEFAULT_QUEUE)) as consumer:
        assert consumer.process.wait(timeout=60) == 2
        output = consumer.output()
    line = (
        f"MNS denied {action} on acs:mns:*:*:/queues/{DEFAULT_QUEUE}{resource} (AccessDenied) to the RAM "
        f"identity of AccessKey {KEY} from {SETTINGS_SOURCE}: grant it the least-privilege policy in "
        "deploy/README.md (RAM console > the user or role > Grant Permission)"
    )
    fatal = [entry for entry in output.splitlines() if '"mns.consumer.fatal"' in entry]
    assert len(fatal) == 1 and line in fatal[0], output
    assert mns.stats(DEFAULT_QUEUE).deleted == 0  # nothing acknowledged it could not account for


def test_no_credentials_anywhere_stops_consume_at_start(
    mns: InProcessEmulator, redis_url: str, tmp_path: Path
) -> None:
    env = consumer_env(mns, redis_url, DEFAULT_QUEUE)
    del env["IMS_WORKER_MNS_ACCESS_KEY_ID"], env["IMS_WORKER_MNS_ACCESS_KEY_SECRET"]
    env.update(HOME=str(tmp_path), ALIBABA_CLOUD_ECS_METADATA_DISABLED="true")  # not on ECS: no probe
    done = cli("consume", env=env, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith(
        "ims-worker: configuration error: no MNS credentials: IMS_WORKER_MNS_ACCESS_KEY_ID is not set and "
        "the Alibaba Cloud default credentials chain found none ("
    ), done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
