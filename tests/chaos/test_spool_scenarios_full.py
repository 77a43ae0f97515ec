"""Redis outages as a provider lives them: IMS (200 within 3 s, 3 tries 1 s apart, then the event is
discarded) and RTC (retries after 1, 2, 5, 10, 60, 120, 300 s) callbacks at 20/s through two shim replicas
behind a load balancer, at the default settings. Each scenario ends with the ledger check: every event the
provider counts as delivered is handled exactly once, and the provider gave up on none.

These send 600 callbacks (30 s) each, one fault per scenario, at the issue's outage durations. Results:
bench/results/chaos/spool-<scenario>.json (the RELIABILITY.md table).

This file (``make chaos-full`` only): Redis stopped, a shim killed with kill -9 holding its spool, Redis
frozen, at maxmemory, a Sentinel failover, the size bound and a full file system; test_spool_scenarios.py has
the issue's own run, with three of these faults in one, in ``make chaos``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.spoolrun import SpoolScenario
from tests.chaos.spoolscenarios import FULL, run_and_check

pytestmark = pytest.mark.chaos_full


@pytest.mark.parametrize("scenario", FULL, ids=[s.name for s in FULL])
def test_spool_scenario(scenario: SpoolScenario, tmp_path: Path) -> None:
    run_and_check(scenario, tmp_path)
