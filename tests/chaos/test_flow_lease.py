"""A worker killed (kill -9) while one of its runs holds a key of ``@handler(key=...)``, at DEFAULT settings
(30 s flow lease renewed every 10 s, 1 s busy retry, 60 s delivery lease): the key's other events resume
within the 90 s recovery bound (within the flow lease unless the dead worker itself held them), and none
of them overlaps another run of that key.
(That the dead worker's own message comes back is ``worker.execution.lease``'s, shown by tests/test_lease.py;
the same
scenario at a short lease in tests/test_flow_fleet.py waits for it too.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from tests.flowfleet import PROFILES, fleet_env, kill_a_key_holder, overlaps_per_key
from tests.servers import running_redis
from worker.settings import Settings

pytestmark = pytest.mark.chaos

RECOVERY_BOUND = 90.0


@pytest.mark.parametrize("profile", PROFILES)
def test_a_killed_key_holder_frees_its_key_within_the_lease_at_defaults(tmp_path: Path, profile: str) -> None:
    defaults = Settings()
    with running_redis(tmp_path / "redis", appendonly=False) as server:
        env = fleet_env(server.url)
        client = redis.Redis.from_url(server.url)
        result = kill_a_key_holder(server.url, env, client, await_the_dead=False, profile=profile)
        client.close()
    print(
        f"\nflow lease ({profile} profile): key resumed {result.resumed_after:.1f}s after the kill",
        flush=True,
    )
    # The lease (renewed up to a third of it before the kill), the longest busy-retry countdown, and slack for
    # Celery's ETA timer and prefetch on a loaded 2-core CI machine: 29 s was measured against 41.5 s here.
    # Events of K that the dead worker itself held (prefetched, or waiting for a busy-retry countdown, which
    # Celery keeps in the worker outside the prefetch limit) come back only with its 60 s delivery lease: one
    # CI run measured 68.8 s that way. Within the flow lease is the common case (printed); the promise checked
    # is the documented recovery bound.
    within_flow_lease = (
        result.resumed_after < defaults.flow_lease_seconds + 1.5 * defaults.flow_busy_retry_seconds + 10.0
    )
    print(f"flow lease ({profile} profile): within the flow lease: {within_flow_lease}", flush=True)
    assert 0 < result.resumed_after < RECOVERY_BOUND, result.resumed_after
    assert overlaps_per_key(result.key_runs) == []
