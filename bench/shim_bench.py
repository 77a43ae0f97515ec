"""2. Shim throughput and latency under wrk, beside the naive FastAPI endpoint and the bare-Starlette ceiling.

With one process the same shim app also runs on stock uvicorn (httptools, no connection cap, deadlines or
in-flight body budget): the ratio prices ``worker.boundedhttp`` and ``worker.shim.inflight``.

Traffic: signed RTC event-subscription messages (two events each) and production-studio callbacks (token),
alternating, every body unique (``__UNIQ__`` in every identifier), 32 connections. The signature timestamp is
made once at start: it stays inside the 300 s window for the whole run. The reported shim figures are the
unique-body ones (the real case); a duplicate-body run shows the cost of answering a redelivery.

All servers get the same requests; the baselines ignore the signature and do strictly less work. The servers
of one process count run side by side and are measured in interleaved segments (shim, ceiling, naive, shim,
...), so that a busy minute on a shared machine hits all of them alike.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from bench import spoolbench, wrk
from bench.config import BenchConfig
from bench.payloads import sample, uniquify
from bench.procs import Service, Stack, tool, wait_for_port
from bench.stats import Benchmark, Metrics, Row, check, fmt, ratio
from worker.devtools.embedded import free_port
from worker.shim.signing import sign_request

PUBLIC_URL = "http://bench.invalid"
RTC_KEY = "bench-rtc-app-key"
CASTER_TOKEN = "bench-caster-token"
EVENT_QUEUES = ("rtc", "live")  # where rtc.* and live.caster.* task messages land
SHIMS = ("shim", "unbounded", *spoolbench.TARGETS)


def requests(now: float) -> list[wrk.WrkRequest]:
    rtc_body = json.dumps(uniquify(sample("rtc", "eventsub"), wrk.UNIQ)).encode()
    caster_body = json.dumps(uniquify(sample("live-caster", "OperateCallback"), wrk.UNIQ)).encode()
    rtc = sign_request("rtc", rtc_body, key=RTC_KEY, public_url=PUBLIC_URL, now=now)
    caster = sign_request("live.caster", caster_body, key=CASTER_TOKEN, public_url=PUBLIC_URL, now=now)
    return [
        wrk.WrkRequest("/webhooks/rtc", rtc.headers, rtc.body.decode()),
        wrk.WrkRequest(
            f"/webhooks/live/caster?token={caster.query['token']}", caster.headers, caster.body.decode()
        ),
    ]


def _start(stack: Stack, target: str, processes: int, redis_url: str) -> tuple[Service, int]:
    port = free_port()
    if target in SHIMS:
        env = {
            "IMS_WORKER_BROKER_URL": redis_url,
            "IMS_WORKER_SHIM_PUBLIC_URL": PUBLIC_URL,
            "IMS_WORKER_RTC_APP_KEY": RTC_KEY,
            "IMS_WORKER_CASTER_TOKEN": CASTER_TOKEN,
            "IMS_WORKER_LOG_FORMAT": "json",
            "IMS_WORKER_SHIM_SPOOL_DIR": str(stack.workdir / f"spool-{target}-{port}"),
        }
        env.update(spoolbench.environment(target))
        args = [tool("ims-worker"), "shim", "--port", str(port), "--workers", str(processes)]
        args += ["--host", "127.0.0.1"]
        if target == "unbounded":  # the same app on stock uvicorn: no connection cap, deadlines, body budget
            factory = "worker.shim.app:create_app_from_environment"
            args = [sys.executable, "-m", "uvicorn", factory, "--factory", "--http", "httptools"]
            args += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"]
    else:
        env = {"BENCH_BROKER_URL": redis_url}
        module = {"naive": "bench.baselines.naive_shim:app", "ceiling": "bench.baselines.ceiling:app"}[target]
        args = [
            sys.executable,
            "-m",
            "uvicorn",
            module,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(processes),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
    service = stack.start(f"{target}-{processes}", args, env=env)
    wait_for_port(port, timeout=30, proc=service)
    return service, port


@dataclass
class _Target:
    """One server under test and what its wrk segments added up to."""

    name: str  # shim, shimdup, ceiling, naive
    service: Service
    url: str
    unique: bool = True
    requests: int = 0
    seconds: float = 0.0
    errors: int = 0
    cpu: float = 0.0
    enqueued: int = 0
    p50s: list[float] = field(default_factory=list)
    p99s: list[float] = field(default_factory=list)
    worst: float = 0.0

    def metrics(self) -> dict[str, float]:
        out = {
            "rps": self.requests / self.seconds,
            # Medians over segments: one noisy segment on a shared machine does not decide the figure.
            "p50_ms": statistics.median(self.p50s),
            "p99_ms": statistics.median(self.p99s),
            "max_ms": self.worst,
            "errors": float(self.errors),
            # Server CPU per answered request: less sensitive than req/s to what else the machine runs.
            "cpu_ms_per_req": self.cpu / max(1, self.requests) * 1000,
        }
        if self.name in SHIMS or self.name == "shimdup":
            # Sanity: unique bodies give 1.5 events per request (RTC 2, caster 1); duplicates give ~0.
            out["events_per_request"] = self.enqueued / max(1, self.requests)
        return out


def _queued(client: redis.Redis) -> int:
    return sum(int(client.llen(queue)) for queue in EVENT_QUEUES)


def _segment(
    target: _Target, config: BenchConfig, seconds: float, client: redis.Redis, workdir: Path
) -> None:
    before_cpu, before_queued = target.service.cpu_seconds(), _queued(client)
    result = wrk.run(
        target.url,
        requests(time.time()),
        seconds=seconds,
        connections=config.connections,
        threads=config.wrk_threads,
        unique=target.unique,
        workdir=workdir,
    )
    target.cpu += target.service.cpu_seconds() - before_cpu
    target.enqueued += _queued(client) - before_queued
    target.requests += result.requests
    target.seconds += result.seconds
    target.errors += result.non_2xx_or_errors
    target.p50s.append(result.p50_ms)
    target.p99s.append(result.p99_ms)
    target.worst = max(target.worst, result.max_ms)


def _group(stack: Stack, config: BenchConfig, redis_url: str, processes: int) -> list[_Target]:
    """Every server of one process count, measured in interleaved segments: each gets the same minutes."""
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    targets: list[_Target] = []
    # The naive baseline is one uvicorn process by definition; it is measured again in every group. The
    # unbounded shim (one process) prices the bounded protocol and body budget.
    names: tuple[str, ...] = ("shim", "ceiling", "naive")
    if processes == 1:
        names += ("unbounded", *spoolbench.TARGETS)
    for name in names:
        service, port = _start(stack, name, 1 if name in ("naive", "unbounded") else processes, redis_url)
        targets.append(_Target(name, service, f"http://127.0.0.1:{port}"))
    if processes == 1:  # the duplicate case: the same shim, every body repeated
        targets.append(_Target("shimdup", targets[0].service, targets[0].url, unique=False))
    try:
        for target in targets if config.warmup_seconds else []:
            wrk.run(
                target.url,
                requests(time.time()),
                seconds=config.warmup_seconds,
                connections=config.connections,
                threads=config.wrk_threads,
                unique=target.unique,
                workdir=stack.workdir,
            )
        for index in range(config.shim_segments):
            shift = index % len(targets)  # rotate the order so that no target always goes first
            for target in targets[shift:] + targets[:shift]:
                _segment(target, config, config.shim_seconds / config.shim_segments, client, stack.workdir)
    finally:
        for target in targets:
            target.service.stop()
        client.close()
    return targets


def run(config: BenchConfig) -> tuple[Metrics, dict[str, Any]]:
    if not wrk.available():
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    metrics: Metrics = {}
    with Stack(config.workdir / f"shim-{uuid.uuid4().hex[:6]}") as stack:
        redis_url = stack.redis()
        for n in config.processes:
            for target in _group(stack, config, redis_url, n):
                for key, value in target.metrics().items():
                    metrics[f"{target.name}_{n}_{key}"] = value
    for n in config.processes:
        # Each ratio against the baseline measured in the same interleaved group.
        metrics[f"ratio_naive_{n}"] = metrics[f"shim_{n}_rps"] / metrics[f"naive_{n}_rps"]
        metrics[f"ratio_ceiling_{n}"] = metrics[f"shim_{n}_rps"] / metrics[f"ceiling_{n}_rps"]
    if 1 in config.processes:
        metrics["ratio_bounded_1"] = metrics["shim_1_rps"] / metrics["unbounded_1_rps"]
        metrics.update(spoolbench.ratios(metrics))
    facts = {
        "processes": list(config.processes),
        "connections": config.connections,
        "seconds": config.shim_seconds,
        "segments": config.shim_segments,
        "warmup_seconds": config.warmup_seconds,
    }
    return metrics, facts


def _latency(m: Metrics, key: str) -> str:
    return f"{fmt(m[key + '_p50_ms'], 1)} / {fmt(m[key + '_p99_ms'], 1)}"


def rows(m: Metrics, facts: dict[str, Any]) -> list[Row]:
    name = "shim"
    out = [
        Row(
            name,
            "naive FastAPI, 1 process: req/s; p50/p99 ms; CPU ms/req",
            "",
            f"{fmt(m['naive_1_rps'])}; {_latency(m, 'naive_1')}; {fmt(m['naive_1_cpu_ms_per_req'], 3)}",
        )
    ]
    for n in facts["processes"]:
        out += [
            Row(
                name,
                f"req/s, {n} process(es), vs naive (1 process, same minutes)",
                fmt(m[f"shim_{n}_rps"]),
                fmt(m[f"naive_{n}_rps"]),
                fmt(m[f"ratio_naive_{n}"], 1, "x"),
                ">= 5x",
                check(m[f"ratio_naive_{n}"], 5, at_least=True),
            ),
            Row(
                name,
                f"req/s, {n} process(es), vs ceiling",
                fmt(m[f"shim_{n}_rps"]),
                fmt(m[f"ceiling_{n}_rps"]),
                fmt(m[f"ratio_ceiling_{n}"], 2, "x"),
                ">= 0.75x",
                check(m[f"ratio_ceiling_{n}"], 0.75, at_least=True),
            ),
            Row(
                name,
                f"p50 / p99 ms, {n} process(es) (baseline: ceiling)",
                _latency(m, f"shim_{n}"),
                _latency(m, f"ceiling_{n}"),
                "",
                "p99 <= 50",
                check(m[f"shim_{n}_p99_ms"], 50, at_least=False),
            ),
            Row(
                name,
                f"server CPU ms per request, {n} process(es) (baseline: ceiling)",
                fmt(m[f"shim_{n}_cpu_ms_per_req"], 3),
                fmt(m[f"ceiling_{n}_cpu_ms_per_req"], 3),
                fmt(ratio(m[f"shim_{n}_cpu_ms_per_req"], m[f"ceiling_{n}_cpu_ms_per_req"]), 2, "x"),
            ),
            Row(
                name,
                f"errors / events per request, {n} process(es)",
                f"{fmt(m[f'shim_{n}_errors'])} / {fmt(m[f'shim_{n}_events_per_request'], 2)}",
            ),
        ]
    out.append(
        Row(
            name,
            "duplicate bodies, 1 process: req/s; p50/p99 ms",
            f"{fmt(m['shimdup_1_rps'])}; {_latency(m, 'shimdup_1')}",
        )
    )
    if "ratio_bounded_1" in m:
        out += [
            Row(
                name,
                "req/s, 1 process: bounded protocol + body budget vs the same app on stock uvicorn",
                fmt(m["shim_1_rps"]),
                fmt(m["unbounded_1_rps"]),
                fmt(m["ratio_bounded_1"], 2, "x"),
                ">= 0.9x",
                check(m["ratio_bounded_1"], 0.9, at_least=True),
            ),
            Row(
                name,
                "server CPU ms per request, 1 process: bounded vs stock uvicorn",
                fmt(m["shim_1_cpu_ms_per_req"], 3),
                fmt(m["unbounded_1_cpu_ms_per_req"], 3),
                fmt(ratio(m["shim_1_cpu_ms_per_req"], m["unbounded_1_cpu_ms_per_req"]), 2, "x"),
            ),
        ]
    return out + spoolbench.rows(m)


BENCHMARK = Benchmark("shim", "Shim throughput and latency (wrk, 32 connections)", run, rows)
