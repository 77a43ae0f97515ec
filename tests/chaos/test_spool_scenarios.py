"""Redis outages as a provider lives them: IMS (200 within 3 s, 3 tries 1 s apart, then the event is
discarded) and RTC (retries after 1, 2, 5, 10, 60, 120, 300 s) callbacks at 20/s through two shim replicas
behind a load balancer, at the default settings. Each scenario ends with the ledger check: every event the
provider counts as delivered is handled exactly once, and the provider gave up on none.

The issue's run sent 1,200 callbacks at 20/s; these send 600 (30 s) so that a scenario stays near a minute and
a half; the outage durations are the issue's. Results: bench/results/chaos/spool-<scenario>.json (the
RELIABILITY.md table).

This file (``make chaos``): Redis stopped 20 s, and a shim killed with kill -9 holding its spool; the
other faults are in test_spool_scenarios_full.py (``make chaos-full``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.spoolrun import SpoolScenario
from tests.chaos.spoolscenarios import CI, run_and_check

pytestmark = pytest.mark.chaos


@pytest.mark.parametrize("scenario", CI, ids=[s.name for s in CI])
def test_spool_scenario(scenario: SpoolScenario, tmp_path: Path) -> None:
    run_and_check(scenario, tmp_path)
