"""The chaos scenarios. Each runs the whole service under mixed load (MNS: all IMS types, plain and base64,
unknown types, poison, garbage, failed validation, duplicates; signed webhooks of every provider, repeats,
poison and bad requests) for a bounded time with its own faults, then drains and runs the ledger check."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos import faults
from tests.chaos.budget import Budget
from tests.chaos.scenario import Scenario, run_scenario

pytestmark = pytest.mark.chaos

SCENARIOS = [
    Scenario("mixed-load", "MNS and every webhook provider at once, no faults"),
    Scenario(
        "kill-9",
        "kill -9 of the consumer, the shim and Celery pool children at random moments; `ims-worker run` "
        "restarts them",
        strikes=[faults.kill_consumer, faults.kill_shim, faults.kill_worker_child],
        pause=(1.0, 2.5),
        supervised=True,
    ),
    Scenario(
        "redis-restart",
        "Redis restarted (SIGTERM or kill -9, AOF on) during the load; `ims-worker run` restarts what "
        "crashes",
        strikes=[faults.restart_redis],
        pause=(2.0, 4.0),
        supervised=True,
    ),
    Scenario(
        "mns-faults",
        "the emulator injects 503/500s, dropped connections and responses, latency and partial BatchDelete "
        "failures in waves; the consumer is restarted mid-wave and once while every MNS request fails",
        strikes=[faults.mns_fault_wave],
        opening=faults.restart_consumer_in_mns_outage,
        pause=(0.5, 1.5),
    ),
    Scenario(
        "duplicates",
        "MNS deletes refused so published messages are redelivered after their visibility timeout, consumer "
        "killed after publishing, bodies sent twice, webhooks POSTed up to 4 times (some at once)",
        strikes=[faults.refuse_deletes, faults.kill_consumer],
        pause=(1.0, 2.0),
        mns_duplicate_rate=0.25,
        webhook_duplicate_rate=0.40,
    ),
    Scenario(
        "poison",
        "poison events (a handler that always fails, one that raises Permanent), failed validation, "
        "oversize, malformed, unsupported and unauthenticated webhooks",
        negative_rate=0.35,
        poison_rate=0.15,
        mns_rate=30.0,
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario_passes_the_ledger_check(scenario: Scenario, budget: Budget, tmp_path: Path) -> None:
    summary = run_scenario(scenario, budget, tmp_path)
    assert summary["events"]["sent_distinct"] > 0
    problems = "\n".join(summary["problems"])
    assert summary["result"] == "pass", (
        f"{scenario.name} failed ({summary['problem_count']} problems; seed {budget.seed}, "
        f"replay: {summary['command']} PYTEST_ARGS='-k {scenario.name}'):\n{problems}"
    )
