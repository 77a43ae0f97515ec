"""worker.celerylog: which processes are Celery's command line (so their own lines go through our logging),
and Flower's password check."""

from __future__ import annotations

import pytest

from worker.celerylog import celery_command, check_flower_auth


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
    "value", ["ops:change-me", "ops:", "ops", "a:real-pass-1,b:changeme", " , ", "ops:<password>"]
)
def test_flower_auth_refused(value: str) -> None:
    with pytest.raises(SystemExit) as refused:
        check_flower_auth(value)
    assert refused.value.code == 2


@pytest.mark.parametrize("value", [None, "ops:Zq8-real-pass", "a:one-real-pass,b:another-real-pass"])
def test_flower_auth_accepted(value: str | None) -> None:
    check_flower_auth(value)
