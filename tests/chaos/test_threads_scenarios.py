"""The kill -9 scenario in the ``io`` worker profile (Celery's threads pool, started without pool flags as
production starts it). A file of its own, so that ``make chaos`` runs it beside ``test_scenarios.py``, not
after it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos import faults
from tests.chaos.budget import Budget
from tests.chaos.scenario import Scenario, run_scenario

pytestmark = pytest.mark.chaos

KILL_9_THREADS = Scenario(
    "kill-9-threads",
    "the kill -9 scenario in the io profile (threads pool): a worker kill -9 takes the whole worker and "
    "every delivery its threads held; they come back after the delivery lease (10 s here: the default 60 s "
    "is the recovery scenario's, `make chaos-full`)",
    strikes=[faults.kill_consumer, faults.kill_shim, faults.kill_worker_child],
    pause=(1.5, 3.0),
    supervised=True,
    profile="io",
    extra_env={"IMS_WORKER_BROKER_VISIBILITY_TIMEOUT": "10"},
)


def test_kill_9_in_the_io_profile_passes_the_ledger_check(budget: Budget, tmp_path: Path) -> None:
    summary = run_scenario(KILL_9_THREADS, budget, tmp_path)
    assert summary["events"]["sent_distinct"] > 0
    assert summary["faults_injected"].get("worker_kills", 0) > 0, summary["faults_injected"]
    replay = f"{summary['command']} PYTEST_ARGS='-k io_profile'"
    problems = "\n".join(summary["problems"])
    assert summary["result"] == "pass", (
        f"kill-9-threads failed (seed {budget.seed}, replay: {replay}):\n{problems}"
    )
