"""Fixtures of the chaos suite: the run's budget (seed, durations), and the broker scenarios' ledger Redis;
and the order in which ``make chaos`` hands its scenario files to its processes."""

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


# Seconds each file took in `make chaos` (2026-12-07, 6 processes on 2 cores). pytest-xdist's loadfile hands
# every process two files at the start (with 12 files and 6 processes, all of them): the longest six first,
# then the rest shortest first, so that each long file is paired with a short one. Unlisted files count 30 s.
FILE_SECONDS = {
    "test_scenarios.py": 205,
    "test_recovery.py": 197,
    "test_brokers_sentinel.py": 197,
    "test_flow_lease.py": 148,
    "test_inbox.py": 105,
    "test_credentials_rotation.py": 70,
    "test_spool_scenarios.py": 68,
    "test_brokers_rabbitmq.py": 67,
    "test_threads_scenarios.py": 38,
    "test_worker_liveness.py": 24,
    "test_security.py": 15,
    "test_known_defects.py": 9,
    "test_ledger_check.py": 1,
}
PROCESSES_HINT = 6


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Name breaks ties: every xdist process must collect the same order.
    files = sorted({item.path.name for item in items}, key=lambda name: (-FILE_SECONDS.get(name, 30), name))
    order = files[:PROCESSES_HINT] + files[PROCESSES_HINT:][::-1]
    rank = {name: index for index, name in enumerate(order)}
    items.sort(key=lambda item: rank[item.path.name])  # stable: a file's own order is kept
