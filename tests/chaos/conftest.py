"""Fixtures of the chaos suite: the run's budget (seed, durations), and the broker scenarios' ledger Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.budget import Budget, current_budget
from tests.servers import RedisServer, running_redis


@pytest.fixture(scope="session")
def budget() -> Budget:
    chosen = current_budget()
    print(
        f"\nchaos: mode {chosen.mode}, seed {chosen.seed} (set IMS_WORKER_CHAOS_SEED to replay), "
        f"{chosen.load_seconds:.0f}s of load per scenario",
        flush=True,
    )
    return chosen


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[RedisServer]:
    """Where the broker scenarios' handlers write their ledger: a Redis no fault touches."""
    with running_redis(tmp_path / "ledger", appendonly=False) as server:
        yield server
