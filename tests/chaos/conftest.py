"""Fixtures of the chaos suite: the run's budget (seed, durations) and a work directory per scenario."""

from __future__ import annotations

import pytest

from tests.chaos.budget import Budget, current_budget


@pytest.fixture(scope="session")
def budget() -> Budget:
    chosen = current_budget()
    print(
        f"\nchaos: mode {chosen.mode}, seed {chosen.seed} (set IMS_WORKER_CHAOS_SEED to replay), "
        f"{chosen.load_seconds:.0f}s of load per scenario",
        flush=True,
    )
    return chosen
