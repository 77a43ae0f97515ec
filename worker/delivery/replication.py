"""``WAIT`` after the publish script: a batch counts as published only once replicas hold it.

Redis replicates asynchronously: a primary that dies right after answering can take the last writes with it,
and Sentinel then promotes a replica that never saw them (the dedupe marker and the task message both vanish,
and upstream, already acknowledged, never sends them again). With ``redis_wait_replicas`` = N the script and
``WAIT N timeout`` go in one pipeline (``WAIT`` counts the writes of its own connection); fewer than N
confirmations -> ``BrokerUnavailable``: upstream is not acknowledged and retries, which is a duplicate if the
batch survived and a fresh publish if a failover lost it.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio
from redis.commands.core import AsyncScript, Script

from worker.errors import BrokerUnavailable


def _check(acked: Any, replicas: int, timeout_ms: int) -> None:
    if int(acked) < replicas:
        raise BrokerUnavailable(
            f"Redis took the batch but only {int(acked)} of {replicas} replicas confirmed it within "
            f"{timeout_ms} ms (IMS_WORKER_REDIS_WAIT_REPLICAS); not acknowledging upstream"
        )


def run_replicated(
    client: redis.Redis, script: Script, keys: list[str], args: list[Any], *, replicas: int, timeout_ms: int
) -> Any:
    with client.pipeline(transaction=False) as pipe:
        script(keys=keys, args=args, client=pipe)
        pipe.execute_command("WAIT", replicas, timeout_ms)  # type: ignore[no-untyped-call]
        flags, acked = pipe.execute()
    _check(acked, replicas, timeout_ms)
    return flags


async def run_replicated_async(
    client: redis.asyncio.Redis,
    script: AsyncScript,
    keys: list[str],
    args: list[Any],
    *,
    replicas: int,
    timeout_ms: int,
) -> Any:
    async with client.pipeline(transaction=False) as pipe:
        await script(keys=keys, args=args, client=pipe)
        pipe.execute_command("WAIT", replicas, timeout_ms)
        flags, acked = await pipe.execute()
    _check(acked, replicas, timeout_ms)
    return flags
