"""Worker-crash recovery at default settings: kill -9 of a worker mid-drain, every event handled within the
bound; a task running three leases on a live worker runs once (``tests/chaos/recovery.py``). The same in the
io profile (threads pool) is slow (~4 min) and runs in ``make chaos-full``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.budget import Budget
from tests.chaos.recovery import run_recovery

pytestmark = pytest.mark.chaos


def test_recovery_after_worker_kill_at_default_lease(budget: Budget, tmp_path: Path) -> None:
    summary = run_recovery(budget, tmp_path)
    assert summary["result"] == "pass", "\n".join(summary["problems"])


@pytest.mark.chaos_full
def test_recovery_after_worker_kill_at_default_lease_in_the_io_profile(
    budget: Budget, tmp_path: Path
) -> None:
    summary = run_recovery(budget, tmp_path, profile="io")
    assert summary["result"] == "pass", "\n".join(summary["problems"])
