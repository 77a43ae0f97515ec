"""Redis outages as a provider lives them: IMS (200 within 3 s, 3 tries 1 s apart, then the event is
discarded) and RTC (retries after 1, 2, 5, 10, 60, 120, 300 s) callbacks at 20/s through two shim replicas
behind a load balancer, at the default settings. Each scenario ends with the ledger check: every event the
provider counts as delivered is handled exactly once, and the provider gave up on none. Results:
bench/results/chaos/spool-<scenario>.json (the RELIABILITY.md table).

This file (``make chaos``): the run issue 21 reported, 1,200 IMS callbacks at 20/s through Redis stopped for
20 s (a shim killed with kill -9 meanwhile, holding its spool) and then frozen for 10 s. Before the spool the
provider gave up on 399 of them. Each fault alone, and the others, are in test_spool_scenarios_full.py
(``make chaos-full``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.spoolrun import SpoolScenario
from tests.chaos.spoolscenarios import CI, run_and_check

pytestmark = pytest.mark.chaos


@pytest.mark.parametrize("scenario", CI, ids=[s.name for s in CI])
def test_spool_scenario(scenario: SpoolScenario, tmp_path: Path) -> None:
    run_and_check(scenario, tmp_path)
