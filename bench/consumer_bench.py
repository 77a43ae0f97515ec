"""1. Consumer throughput: ``ims-worker consume`` against the SDK sample loop, same emulator, same Redis.

Each side drains its own queue preloaded with unique IMS events (a mix of the 29 types). The clock runs from
the first message taken to the queue being empty (every message published and deleted); interpreter start-up
is outside it for both. Then the broker is checked: every message must be on the Celery queue exactly once.
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

import redis

from bench.config import BenchConfig
from bench.mnsutil import Emulator, start_emulator, watch_drain
from bench.payloads import ims_messages
from bench.procs import PeakSampler, Service, Stack, tool
from bench.stats import Benchmark, Metrics, Row, check, fmt, ratio

CELERY_QUEUE = "ims"  # where ims.* task messages go with the default routes
NAIVE_QUEUE = "naive"


def _drain(
    emulator: Emulator,
    redis_url: str,
    queue: str,
    service: Service,
    total: int,
    celery_queue: str,
    timeout: float,
) -> dict[str, float]:
    sampler = PeakSampler(service)
    sampler.start()
    cpu_marks: list[float] = []
    try:
        drain = watch_drain(
            emulator, queue, total, timeout, on_mark=lambda: cpu_marks.append(service.cpu_seconds())
        )
    except TimeoutError as exc:
        raise RuntimeError(f"{exc}\n--- {service.name} log ---\n{service.log_tail()}") from exc
    finally:
        peak = sampler.stop()
    client = redis.Redis.from_url(redis_url)
    enqueued = int(client.llen(celery_queue))
    client.close()
    if enqueued != total:
        raise RuntimeError(f"{service.name}: {enqueued} task messages on {celery_queue!r} for {total} sent")
    cpu = cpu_marks[1] - cpu_marks[0] if len(cpu_marks) == 2 else float("nan")
    return {
        "msgs_per_s": total / drain.seconds,
        "seconds": drain.seconds,
        "cpu_s_per_1k": cpu / total * 1000,
        "peak_rss_mb": peak / 2**20,
    }


def _ours(
    stack: Stack, emulator: Emulator, redis_url: str, config: BenchConfig, pollers: int
) -> dict[str, float]:
    queue = f"ims-ours-{pollers}-{uuid.uuid4().hex[:6]}"
    emulator.create_queue(queue)
    emulator.preload(queue, ims_messages(config.consumer_messages, queue))
    redis.Redis.from_url(redis_url).flushall()
    env = {
        **emulator.env(queue),
        "IMS_WORKER_BROKER_URL": redis_url,
        "IMS_WORKER_MNS_POLLERS_PER_QUEUE": str(pollers),
        "IMS_WORKER_MNS_WAIT_SECONDS": "1",
        "IMS_WORKER_CONSUMER_METRICS_PORT": "0",
        "IMS_WORKER_LOG_FORMAT": "json",
    }
    service = stack.start(f"consumer-p{pollers}", [tool("ims-worker"), "consume"], env=env)
    try:
        return _drain(
            emulator,
            redis_url,
            queue,
            service,
            config.consumer_messages,
            CELERY_QUEUE,
            config.drain_timeout_s,
        )
    finally:
        service.stop()


def _naive(stack: Stack, emulator: Emulator, redis_url: str, config: BenchConfig) -> dict[str, float]:
    queue = f"ims-naive-{uuid.uuid4().hex[:6]}"
    emulator.create_queue(queue)
    emulator.preload(queue, ims_messages(config.naive_messages, queue))
    redis.Redis.from_url(redis_url).flushall()
    args = [
        sys.executable,
        "-m",
        "bench.baselines.naive_consumer",
        "--endpoint",
        emulator.endpoint,
        "--access-key-id",
        emulator.env(queue)["IMS_WORKER_MNS_ACCESS_KEY_ID"],
        "--access-key-secret",
        emulator.env(queue)["IMS_WORKER_MNS_ACCESS_KEY_SECRET"],
        "--queue",
        queue,
        "--broker",
        redis_url,
        "--celery-queue",
        NAIVE_QUEUE,
    ]
    service = stack.start("naive-consumer", args)
    try:
        return _drain(
            emulator, redis_url, queue, service, config.naive_messages, NAIVE_QUEUE, config.drain_timeout_s
        )
    finally:
        service.stop()


def run(config: BenchConfig) -> tuple[Metrics, dict[str, Any]]:
    metrics: Metrics = {}
    with Stack(config.workdir / f"consumer-{uuid.uuid4().hex[:6]}") as stack:
        redis_url = stack.redis()
        emulator = start_emulator(stack)
        for pollers in config.pollers:
            for key, value in _ours(stack, emulator, redis_url, config, pollers).items():
                metrics[f"ours_p{pollers}_{key}"] = value
        for key, value in _naive(stack, emulator, redis_url, config).items():
            metrics[f"naive_{key}"] = value
    best = max(config.pollers, key=lambda p: metrics[f"ours_p{p}_msgs_per_s"])
    for key in ("msgs_per_s", "seconds", "cpu_s_per_1k", "peak_rss_mb"):
        metrics[f"ours_best_{key}"] = metrics[f"ours_p{best}_{key}"]
    metrics["ratio"] = metrics["ours_best_msgs_per_s"] / metrics["naive_msgs_per_s"]
    facts = {
        "messages": config.consumer_messages,
        "naive_messages": config.naive_messages,
        "pollers_tried": list(config.pollers),
        "best_pollers": best,
    }
    return metrics, facts


def rows(m: Metrics, facts: dict[str, Any]) -> list[Row]:
    name = "consumer"
    out: list[Row] = []
    for pollers in facts["pollers_tried"]:
        out.append(
            Row(
                name,
                f"msgs/s, {pollers} pollers/queue",
                fmt(m[f"ours_p{pollers}_msgs_per_s"]),
                fmt(m["naive_msgs_per_s"]),
                fmt(ratio(m[f"ours_p{pollers}_msgs_per_s"], m["naive_msgs_per_s"]), 1, "x"),
            )
        )
    out += [
        Row(
            name,
            "msgs/s, best setting (median of runs)",
            fmt(m["ours_best_msgs_per_s"]),
            fmt(m["naive_msgs_per_s"]),
            fmt(m["ratio"], 1, "x"),
            ">= 10x",
            check(m["ratio"], 10, at_least=True),
        ),
        Row(
            name,
            "CPU s per 1,000 msgs",
            fmt(m["ours_best_cpu_s_per_1k"], 3),
            fmt(m["naive_cpu_s_per_1k"], 3),
            fmt(ratio(m["ours_best_cpu_s_per_1k"], m["naive_cpu_s_per_1k"]), 2, "x"),
        ),
        Row(
            name,
            "peak RSS MB (process tree)",
            fmt(m["ours_best_peak_rss_mb"], 1),
            fmt(m["naive_peak_rss_mb"], 1),
            "",
            "<= 150",
            check(m["ours_best_peak_rss_mb"], 150, at_least=False),
        ),
    ]
    return out


BENCHMARK = Benchmark("consumer", "Consumer throughput (MNS -> broker)", run, rows)
