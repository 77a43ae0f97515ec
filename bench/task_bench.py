"""4. Task overhead: our task wrapper against a bare Celery task doing the same handler work.

Both variants get the same number of unique IMS events preloaded on their queue before their worker starts,
then one Celery worker with the same pool, concurrency and flags drains it; each variant runs twice with half
the tasks, in the order bare, ours, ours, bare. The handler work is
``bench.plugin.record`` (one pipelined Redis round trip). Throughput is measured between the first and the
last handler start, as the handler itself recorded them, so worker start-up is outside it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import redis
from celery import Celery

from bench.baselines import BARE_QUEUE, BARE_TASK
from bench.config import BenchConfig
from bench.payloads import ims_messages
from bench.plugin import COUNTER_KEY, FIRST_KEY, LAST_KEY
from bench.procs import Service, Stack, tool
from bench.stats import Benchmark, Metrics, Row, check, fmt
from worker.delivery.publish import Publisher
from worker.events import Event
from worker.providers import normalize
from worker.settings import load_settings


def events(count: int, tag: str) -> list[Event]:
    return [event for body in ims_messages(count, tag) for event in normalize("ims", body)]


def preload_ours(redis_url: str, batch: list[Event]) -> None:
    publisher = Publisher(load_settings(broker_url=redis_url))
    try:
        results = publisher.publish(batch)
    finally:
        publisher.close()
    if not all(result.enqueued for result in results):
        raise RuntimeError("preloading our task messages met duplicates: the events are not unique")


def preload_bare(redis_url: str, batch: list[Event]) -> None:
    producer_app = Celery("bare-producer", broker=redis_url)
    with producer_app.producer_or_acquire() as producer:
        for event in batch:
            producer_app.send_task(
                BARE_TASK, args=[event.model_dump(mode="json")], queue=BARE_QUEUE, producer=producer
            )


def wait_handled(
    client: redis.Redis, total: int, timeout: float, service: Service, on_mark: Callable[[], object]
) -> None:
    deadline = time.monotonic() + timeout
    started = False
    while time.monotonic() < deadline:
        done = int(client.get(COUNTER_KEY) or 0)
        if not started and done:
            started = True
            on_mark()
        if done >= total:
            on_mark()
            return
        if service.popen.poll() is not None:
            raise RuntimeError(f"{service.name} exited:\n{service.log_tail()}")
        time.sleep(0.02)
    raise RuntimeError(
        f"{service.name}: {client.get(COUNTER_KEY)!r} of {total} handled after {timeout}s:\n"
        f"{service.log_tail()}"
    )


def _variant(stack: Stack, config: BenchConfig, redis_url: str, variant: str, count: int) -> dict[str, float]:
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    batch = events(count, f"{variant}-{uuid.uuid4().hex[:8]}")
    if variant == "ours":
        preload_ours(redis_url, batch)
        app, queue = "worker.app", "ims"
    else:
        preload_bare(redis_url, batch)
        app, queue = "bench.baselines.bare_tasks", BARE_QUEUE
    env = {
        "IMS_WORKER_BROKER_URL": redis_url,
        "BENCH_REDIS_URL": redis_url,
        "IMS_WORKER_HANDLER_MODULES": "bench.plugin",
        "IMS_WORKER_LOG_FORMAT": "json",
    }
    args = [
        tool("celery"),
        "-A",
        app,
        "worker",
        "-P",
        config.pool,
        "-c",
        str(config.concurrency),
        "-Q",
        queue,
        "--loglevel",
        "INFO",
        "--without-mingle",
        "--without-gossip",
    ]
    return drain(stack.start(f"worker-{variant}", args, env=env), client, len(batch), config)


def drain(service: Service, client: redis.Redis, count: int, config: BenchConfig) -> dict[str, float]:
    """Wait until the started worker handled ``count`` tasks: its throughput between the first and last."""
    cpu: list[float] = []
    try:
        wait_handled(
            client, count, config.drain_timeout_s, service, lambda: cpu.append(service.cpu_seconds())
        )
    finally:
        service.stop()
    first, last = float(client.get(FIRST_KEY) or 0), float(client.get(LAST_KEY) or 0)
    client.close()
    return {"tasks": count - 1, "seconds": max(last - first, 1e-6), "cpu": cpu[1] - cpu[0]}


# Bare, ours, ours, bare: each variant gets half its tasks early and half late in the run, so a drift in how
# busy the shared machine is does not favour either.
ORDER = ("bare", "ours", "ours", "bare")


def run(config: BenchConfig) -> tuple[Metrics, dict[str, Any]]:
    metrics: Metrics = {}
    with Stack(config.workdir / f"tasks-{uuid.uuid4().hex[:6]}") as stack:
        redis_url = stack.redis()
        order = ORDER[:2] if config.smoke else ORDER  # the smoke run: one worker start per variant
        share = config.tasks // order.count("ours")
        parts = [(variant, _variant(stack, config, redis_url, variant, share)) for variant in order]
    for variant in ("bare", "ours"):
        mine = [part for name, part in parts if name == variant]
        tasks, seconds, cpu = (sum(part[key] for part in mine) for key in ("tasks", "seconds", "cpu"))
        metrics[f"{variant}_tasks_per_s"] = tasks / seconds
        metrics[f"{variant}_cpu_ms_per_task"] = cpu / tasks * 1000
    metrics["ratio"] = metrics["ours_tasks_per_s"] / metrics["bare_tasks_per_s"]
    return metrics, {"tasks": config.tasks, "pool": config.pool, "concurrency": config.concurrency}


def rows(m: Metrics, facts: dict[str, Any]) -> list[Row]:
    setting = f"{facts['pool']} x{facts['concurrency']}"
    return [
        Row(
            "tasks",
            f"tasks/s ({setting})",
            fmt(m["ours_tasks_per_s"]),
            fmt(m["bare_tasks_per_s"]),
            fmt(m["ratio"], 2, "x"),
            ">= 0.75x",
            check(m["ratio"], 0.75, at_least=True),
        ),
        Row(
            "tasks",
            "worker CPU ms per task",
            fmt(m["ours_cpu_ms_per_task"], 2),
            fmt(m["bare_cpu_ms_per_task"], 2),
        ),
    ]


BENCHMARK = Benchmark("tasks", "Task overhead (wrapper vs bare Celery task)", run, rows)
