"""worker.execution.celerylog: which processes are Celery's command line (so their own lines go through our
logging), and Flower's password check."""

from __future__ import annotations

import pytest

from worker.execution.celerylog import celery_command, check_flower_auth, flower_address


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["/venv/bin/celery", "-A", "worker.app", "worker", "-E"], "worker"),
        (["/venv/lib/python3.11/site-packages/celery/__main__.py", "-A", "worker.app", "worker"], "worker"),
        (["/venv/bin/celery", "-A", "worker.app", "flower", "--port=5555"], "flower"),
        (["/venv/bin/celery", "-A", "worker.app", "inspect", "ping"], "inspect"),
        (["/venv/bin/ims-worker", "run"], None),
        (["/venv/lib/python3.11/site-packages/worker/cli/__main__.py", "consume"], None),
        (["/venv/bin/pytest", "tests"], None),
        ([], None),
    ],
)
def test_celery_command(argv: list[str], command: str | None) -> None:
    assert celery_command(argv) == command


@pytest.mark.parametrize(
    "value",
    [
        "ops:change-me",
        "ops:",
        "ops",
        "a:real-pass-1,b:changeme",
        " , ",
        "ops:<password>",
        "ops:a",
        "ops:elevenchars",
    ],
)
def test_flower_auth_refused(value: str) -> None:
    with pytest.raises(SystemExit) as refused:
        check_flower_auth(value, "0.0.0.0")
    assert refused.value.code == 2


@pytest.mark.parametrize("address", ["", "0.0.0.0", "10.0.0.5"])
def test_flower_without_auth_refuses_to_listen_beyond_loopback(address: str) -> None:
    with pytest.raises(SystemExit) as refused:
        check_flower_auth(None, address)
    assert refused.value.code == 2


@pytest.mark.parametrize(
    ("value", "address"),
    [
        (None, "127.0.0.1"),
        (None, "localhost"),
        ("ops:Zq8-real-pass", "0.0.0.0"),
        ("a:one-real-pass,b:x-y-z-w-v-u-t", ""),
    ],
)
def test_flower_auth_accepted(value: str | None, address: str) -> None:
    check_flower_auth(value, address)


@pytest.mark.parametrize(
    ("argv", "address"),
    [
        (["celery", "-A", "worker.app", "flower", "--address=0.0.0.0"], "0.0.0.0"),
        (["celery", "flower", "--address", "127.0.0.1", "--port=5555"], "127.0.0.1"),
        (["celery", "flower"], ""),
    ],
)
def test_flower_address_is_read_from_the_command_line(argv: list[str], address: str) -> None:
    assert flower_address(argv) == address
