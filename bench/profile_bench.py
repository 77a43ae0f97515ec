"""8. Worker profiles: handlers that wait 50 ms, and CPU-bound ones, in today's pool and in the profiles.

Every variant gets its events preloaded on the ``ims`` queue, then one worker starts and drains it:

* ``today``: ``-P prefork -c 2`` (the shipped worker before profiles) with the sync and the async waiting
  handler (``bench.wait_plugin``: an HTTP GET to ``bench.slowhttp``, which answers after 50 ms);
* ``io``: ``IMS_WORKER_WORKER_PROFILE=io``, no pool flags (threads x32), the same two handlers, and a handler
  that does nothing: Celery's own per-task cost is then the ceiling;
* a CPU-bound handler (~10 ms of pure Python) in today's pool, the ``cpu`` profile (no pool flags), and, to
  show the mismatch the CLI warns about, the ``io`` profile.

Events/s is measured between the first and the last handler's probe (worker start-up is outside it). Today's
waiting variants drain ``profile_baseline_events`` of their preloaded events (at 40/s the rest would only
repeat the same rate for minutes) and are then stopped. Worker RSS: the peak of the worker's process tree
(main process and pool children) while it drains.
"""

from __future__ import annotations

import math
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis

from bench.config import BenchConfig
from bench.plugin import COUNTER_KEY, FIRST_KEY, LAST_KEY
from bench.procs import PeakSampler, Service, Stack, tool, wait_for_port
from bench.stats import Benchmark, Metrics, Row, check, fmt
from bench.task_bench import events, preload_ours
from worker.devtools.embedded import free_port

MB = 1024 * 1024


@dataclass(frozen=True)
class Variant:
    name: str
    handler: str  # bench.wait_plugin's BENCH_HANDLER
    profile: str
    flags: tuple[str, ...]  # pool flags on the command line (none: the profile chooses)
    cpu: bool = False  # a CPU-bound variant (sized by profile_cpu_events)
    baseline: bool = False  # today's waiting variant: drains only profile_baseline_events


TODAY = ("-P", "prefork", "-c", "2")
VARIANTS = (
    Variant("today_sync", "sync", "cpu", TODAY, baseline=True),
    Variant("today_async", "async", "cpu", TODAY, baseline=True),
    Variant("io_sync", "sync", "io", ()),
    Variant("io_async", "async", "io", ()),
    Variant("io_noop", "noop", "io", ()),
    Variant("today_cpu", "cpu", "cpu", TODAY, cpu=True),
    Variant("cpuprofile_cpu", "cpu", "cpu", (), cpu=True),
    Variant("io_cpu", "cpu", "io", (), cpu=True),
)
SMOKE = ("today_sync", "io_async", "cpuprofile_cpu")  # every path (flags or profile, sync, async, cpu), fast


def _variant(
    stack: Stack, config: BenchConfig, redis_url: str, http_url: str, v: Variant
) -> dict[str, float]:
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    preloaded = config.profile_cpu_events if v.cpu else config.profile_events
    preload_ours(redis_url, events(preloaded, f"{v.name}-{uuid.uuid4().hex[:8]}"))
    target = min(preloaded, config.profile_baseline_events) if v.baseline else preloaded
    env = {
        "IMS_WORKER_BROKER_URL": redis_url,
        "IMS_WORKER_HANDLER_MODULES": "bench.wait_plugin",
        "IMS_WORKER_WORKER_PROFILE": v.profile,
        "IMS_WORKER_LOG_FORMAT": "json",
        "IMS_WORKER_WORKER_METRICS_PORT": "0",
        "BENCH_REDIS_URL": redis_url,
        "BENCH_HANDLER": v.handler,
        "BENCH_HTTP_URL": http_url,
        "BENCH_CPU_LOOPS": str(config.profile_cpu_loops),
    }
    args = [
        tool("celery"), "-A", "worker.app", "worker", *v.flags, "-Q", "ims",
        "--loglevel", "INFO", "--without-mingle", "--without-gossip",
    ]  # fmt: skip
    service = stack.start(f"worker-{v.name}", args, env=env)
    sampler = PeakSampler([service], interval=0.2)
    sampler.start()
    try:
        cpu = _wait(client, target, config.drain_timeout_s, service)
    finally:
        sampler.stop()
        service.stop()
    first, last = float(client.get(FIRST_KEY) or 0), float(client.get(LAST_KEY) or 0)
    handled = int(client.get(COUNTER_KEY) or 0)
    client.close()
    return {
        "events_per_s": (handled - 1) / max(last - first, 1e-6),
        "rss_mb": sampler.peak_rss / MB,
        "cpu_ms_per_event": cpu[1] / max(handled - cpu[0], 1) * 1000,
    }


def _wait(client: redis.Redis, total: int, timeout: float, service: Service) -> tuple[int, float]:
    """Wait for ``total`` handled; returns (handled when the first was seen, the worker's CPU seconds from
    then to the end): CPU per event, which a busy shared machine moves less than events/s."""
    deadline = time.monotonic() + timeout
    start: tuple[int, float] | None = None
    while time.monotonic() < deadline:
        done = int(client.get(COUNTER_KEY) or 0)
        if start is None and done:
            start = (done, service.cpu_seconds())
        if done >= total and start is not None:
            return start[0], service.cpu_seconds() - start[1]
        if service.popen.poll() is not None:
            raise RuntimeError(f"{service.name} exited:\n{service.log_tail()}")
        time.sleep(0.05)
    raise RuntimeError(f"{service.name}: {client.get(COUNTER_KEY)!r} of {total} after {timeout}s")


def run(config: BenchConfig) -> tuple[Metrics, dict[str, Any]]:
    metrics: Metrics = {}
    with Stack(config.workdir / f"profiles-{uuid.uuid4().hex[:6]}") as stack:
        redis_url = stack.redis()
        port = free_port()
        server = stack.start("slowhttp", [sys.executable, "-m", "bench.slowhttp", "--port", str(port)])
        wait_for_port(port, proc=server)
        http_url = f"http://127.0.0.1:{port}/media"
        for v in VARIANTS:
            if config.smoke and v.name not in SMOKE:
                continue
            for key, value in _variant(stack, config, redis_url, http_url, v).items():
                metrics[f"{v.name}_{key}"] = value
    facts = {
        "events": config.profile_events,
        "baseline_events": config.profile_baseline_events,
        "cpu_events": config.profile_cpu_events,
    }
    return metrics, facts


def _get(m: Metrics, key: str) -> float:
    return m.get(key, math.nan)  # the smoke run measures only some variants


def _ratio(m: Metrics, ours: str, base: str) -> float:
    below = _get(m, base)
    return _get(m, ours) / below if below else math.nan


def _pair(m: Metrics, label: str, ours: str, base: str, target: float | None = None) -> list[Row]:
    ratio = _ratio(m, f"{ours}_events_per_s", f"{base}_events_per_s")
    rss = _ratio(m, f"{ours}_rss_mb", f"{base}_rss_mb")
    return [
        Row(
            "profiles",
            f"{label} events/s",
            fmt(_get(m, f"{ours}_events_per_s")),
            fmt(_get(m, f"{base}_events_per_s")),
            fmt(ratio, 2, "x"),
            f">= {target:g}x" if target is not None else "",
            check(ratio, target, at_least=True) if target is not None else None,
        ),
        Row(
            "profiles",
            f"{label} worker RSS MB",
            fmt(_get(m, f"{ours}_rss_mb")),
            fmt(_get(m, f"{base}_rss_mb")),
            fmt(rss, 2, "x"),
            "<= 2x" if target is not None else "",
            check(rss, 2.0, at_least=False) if target is not None else None,
        ),
    ]


def rows(m: Metrics, facts: dict[str, Any]) -> list[Row]:
    out = [
        *_pair(m, "sync 50 ms wait: io vs today (prefork x2)", "io_sync", "today_sync", 10.0),
        *_pair(m, "async 50 ms wait: io vs today (prefork x2)", "io_async", "today_async", 10.0),
    ]
    for kind in ("sync", "async"):
        ratio = _ratio(m, f"io_{kind}_events_per_s", "io_noop_events_per_s")
        out.append(
            Row(
                "profiles",
                f"{kind} 50 ms wait vs no-op handler, both io",
                fmt(_get(m, f"io_{kind}_events_per_s")),
                fmt(_get(m, "io_noop_events_per_s")),
                fmt(ratio, 2, "x"),
                ">= 0.8x",
                check(ratio, 0.8, at_least=True),
            )
        )
    ratio = _ratio(m, "cpuprofile_cpu_events_per_s", "today_cpu_events_per_s")
    out.append(
        Row(
            "profiles",
            "CPU-bound handler: cpu profile vs today",
            fmt(_get(m, "cpuprofile_cpu_events_per_s")),
            fmt(_get(m, "today_cpu_events_per_s")),
            fmt(ratio, 2, "x"),
            ">= 0.95x",
            check(ratio, 0.95, at_least=True),
        )
    )
    ratio = _ratio(m, "io_cpu_events_per_s", "today_cpu_events_per_s")
    out.append(
        Row(
            "profiles",
            "CPU-bound handler in the io profile (the mismatch) vs today",
            fmt(_get(m, "io_cpu_events_per_s")),
            fmt(_get(m, "today_cpu_events_per_s")),
            fmt(ratio, 2, "x"),
        )
    )
    out.append(Row("profiles", "io no-op worker RSS MB", fmt(_get(m, "io_noop_rss_mb"))))
    for name, label in (
        ("io_noop", "io, no-op"),
        ("io_sync", "io, sync 50 ms wait"),
        ("io_async", "io, async 50 ms wait"),
        ("today_sync", "today, sync 50 ms wait"),
        ("today_async", "today, async 50 ms wait"),
    ):
        out.append(
            Row("profiles", f"worker CPU ms per event ({label})", fmt(_get(m, f"{name}_cpu_ms_per_event"), 2))
        )
    return out


BENCHMARK = Benchmark("profiles", "Worker profiles (waiting and CPU-bound handlers)", run, rows)
