"""Every command that reads Redis says the same thing when it is down: one line, the redacted URL, exit 1."""

from __future__ import annotations

import pytest

from tests.servers import free_port
from worker.cli import main
from worker.cli.redisrun import run_against_redis

COMMANDS = [
    ["dlq", "list"],
    ["trace", "MediaId=m-1"],
    ["events", "recent"],
    ["replay", "--event", "ev-1", "--yes"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda argv: " ".join(argv[:2]))
def test_redis_down_is_one_line_naming_the_redacted_url(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    monkeypatch.setenv("IMS_WORKER_BROKER_URL", f"redis://:hidden-pw@127.0.0.1:{port}/0")
    monkeypatch.delenv("IMS_WORKER_REDIS_URL", raising=False)
    assert main(argv) == 1
    err = capsys.readouterr().err
    name = "events recent" if argv[0] == "events" else argv[0]
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(
        f"ims-worker {name}: Redis at redis://[REDACTED]@127.0.0.1:{port}/0 is unreachable"
    )
    assert "hidden-pw" not in err and "Traceback" not in err


def test_a_closed_pipe_is_not_reported_as_redis_down() -> None:
    def body() -> int:
        raise BrokenPipeError  # an OSError, as Redis's connection errors are

    with pytest.raises(BrokenPipeError):
        run_against_redis("trace", "redis://127.0.0.1:6379/0", body)
