"""`ims-worker probe` on a progress record; the worker side is tests/chaos/test_worker_liveness.py."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from worker.cli import main
from worker.execution.progress import STALE_RECORD_SECONDS, Progress, verdict

NOW = 1_800_000_000.0


def write(path: Path, **fields: object) -> Path:
    state = Progress(pid=1, queues=["ims"], last_progress=NOW, why="delivery", written=NOW, waiting=4)
    path.write_text(json.dumps({**asdict(state), **fields}))
    return path


def test_recent_progress_passes(tmp_path: Path) -> None:
    alive, why = verdict(write(tmp_path / "p.json", last_progress=NOW - 30), 120, NOW)
    assert alive, why


def test_waiting_messages_and_no_progress_past_the_bound_fail(tmp_path: Path) -> None:
    alive, why = verdict(write(tmp_path / "p.json", last_progress=NOW - 121), 120, NOW)
    assert not alive and "4 messages wait in ims" in why


def test_a_stale_record_fails_and_a_missing_one_too(tmp_path: Path) -> None:
    stale = write(tmp_path / "p.json", written=NOW - STALE_RECORD_SECONDS - 1)
    assert verdict(stale, 120, NOW)[0] is False
    assert verdict(tmp_path / "absent.json", 120, NOW)[0] is False
    (tmp_path / "bad.json").write_text("{")
    assert verdict(tmp_path / "bad.json", 120, NOW)[0] is False


def test_redis_unreachable_is_not_a_reason_to_restart(tmp_path: Path) -> None:
    record = write(tmp_path / "p.json", last_progress=NOW - 600, waiting=-1, redis_error="ConnectionError")
    alive, why = verdict(record, 120, NOW)
    assert alive and "Redis cannot be asked" in why


def test_the_command_exits_1_on_a_missing_record(tmp_path: Path) -> None:
    assert main(["probe", "--file", str(tmp_path / "absent.json")]) == 1
