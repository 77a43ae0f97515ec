"""A worker killed (kill -9) while one of its runs holds a key of ``@handler(key=...)``: at the DEFAULT flow
settings (30 s lease renewed every 10 s, 1 s busy retry), the key's other events resume within the lease, well
inside the 90 s recovery bound, and none of them overlaps another run of that key.

The broker's visibility timeout is shortened (45 s) only so that the dead worker's own message comes back
within the test; how soon that happens at default settings is the worker-crash recovery's business.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from tests.flowfleet import fleet_env, kill_a_key_holder, overlaps_per_key
from tests.servers import running_redis
from worker.settings import Settings

pytestmark = pytest.mark.chaos

RECOVERY_BOUND = 90.0


def test_a_killed_key_holder_frees_its_key_within_the_lease_at_defaults(tmp_path: Path) -> None:
    defaults = Settings()
    with running_redis(tmp_path / "redis", appendonly=False) as server:
        env = fleet_env(server.url, IMS_WORKER_BROKER_VISIBILITY_TIMEOUT="45")
        client = redis.Redis.from_url(server.url)
        result = kill_a_key_holder(server.url, env, client)
        client.close()
    print(f"\nflow lease: key resumed {result.resumed_after:.1f}s after the kill", flush=True)
    bound = defaults.flow_lease_seconds + 1.5 * defaults.flow_busy_retry_seconds + 2.0
    assert 0 < result.resumed_after < min(bound, RECOVERY_BOUND), result.resumed_after
    assert overlaps_per_key(result.key_runs) == []
    assert result.recovered_after < 45 + 30
