"""The spool scenarios (run by tests/chaos/test_spool_scenarios.py and test_spool_scenarios_full.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos import spoolfaults
from tests.chaos.budget import base_seed
from tests.chaos.sentinelreplicas import SentinelReplicaStack, primary_killed
from tests.chaos.spoolrun import SpoolScenario, run_spool_scenario

_MOUNT, _UNMOUNT = spoolfaults.small_filesystem("448k")

ALL = [
    SpoolScenario(
        "the-issues-run",
        "The run issue 21 reported, 1,200 IMS callbacks at 20/s: Redis stopped 20 s and restarted on its "
        "AOF, shim-a killed with kill -9 holding spooled requests and restarted meanwhile, then Redis frozen "
        "with SIGSTOP for 10 s",
        spoolfaults.the_issues_run(20.0, 10.0),
        load_seconds=60.0,
    ),
    SpoolScenario(
        "redis-stopped-20s",
        "Redis stopped (SIGTERM) for 20 s and restarted on its AOF",
        spoolfaults.redis_stopped(20.0),
    ),
    SpoolScenario(
        "shim-kill-9-with-spool",
        "Redis stopped for 20 s; meanwhile shim-a, its spool holding events, is killed with kill -9 and "
        "restarted (it adopts and drains the file its predecessor left)",
        spoolfaults.shim_killed_with_a_spool(20.0),
    ),
    SpoolScenario(
        "redis-sigstop-10s",
        "Redis frozen with SIGSTOP for 10 s (connections open, nothing answered)",
        spoolfaults.redis_frozen(10.0),
    ),
    SpoolScenario(
        "redis-maxmemory",
        "Redis at 95% of maxmemory (past the shims' 0.9 threshold) for 10 s",
        spoolfaults.redis_at_maxmemory(10.0),
    ),
    SpoolScenario(
        "sentinel-failover",
        "Sentinel-managed Redis (IMS_WORKER_REDIS_WAIT_REPLICAS=1, as the docs require with Sentinel): the "
        "primary is killed with kill -9, the replica promoted, the old primary back 3 s later as its replica",
        primary_killed,
        stack=SentinelReplicaStack,
    ),
    SpoolScenario(
        "spool-size-bound",
        "Redis stopped for 20 s with IMS_WORKER_SHIM_SPOOL_MAX_BYTES at its minimum (64 KiB): past the bound "
        "the shims answer 503 and IMS gives up on those events; everything answered 200 is handled once",
        spoolfaults.redis_stopped(20.0),
        env={"IMS_WORKER_SHIM_SPOOL_MAX_BYTES": str(64 * 1024)},
        give_ups_expected=True,
    ),
    SpoolScenario(
        "spool-disk-full",
        "Redis stopped for 20 s; shim-a's spool directory is a 448 KiB tmpfs that fills up: shim-a answers "
        "503 spool_unavailable and fails /readyz, the load balancer sends the retries to shim-b",
        spoolfaults.redis_stopped(20.0),
        prepare=_MOUNT,
        cleanup=_UNMOUNT,
    ),
]

BY_NAME = {scenario.name: scenario for scenario in ALL}
# In `make chaos` (about 2 minutes): the issue's own run, its three faults in one.
CI = [BY_NAME["the-issues-run"]]
# In `make chaos-full` only: each fault alone (about 1.5 minutes each), and the other faults.
FULL = [s for s in ALL if s not in CI]


def run_and_check(scenario: SpoolScenario, tmp_path: Path) -> None:
    if scenario.prepare is _MOUNT and (why := spoolfaults.can_mount()) is not None:
        pytest.skip(f"spool-disk-full needs a real small filesystem: {why}")
    summary = run_spool_scenario(scenario, tmp_path, base_seed())
    row = summary["row"]
    assert row["callbacks_sent"] > 0
    if scenario.give_ups_expected:
        assert row["provider_gave_up"] > 0, "the bound was never reached"
        assert summary["answers"].get("answers_503", 0) > 0
    else:
        assert row["provider_gave_up"] == 0
    if scenario.prepare is _MOUNT:
        assert summary["answers"].get("answers_503", 0) > 0, "shim-a's filesystem never filled up"
    assert not summary["problems"], "\n".join(summary["problems"])
