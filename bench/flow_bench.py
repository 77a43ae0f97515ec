"""5. Flow control: what handlers without options cost against the task wrapper before flow control existed,
and what each option (key, rate, concurrency) costs when it never has to wait.

The baseline ("before") is the ``worker`` and ``handlers`` packages as they were just before flow control
came in (the parent of the commit that added ``worker/execution/policy.py``), extracted with ``git archive``
and put
first on the worker's ``PYTHONPATH``. Every variant drains the same number of unique IMS events preloaded on
its queue with one Celery worker (same pool, concurrency, flags) running ``bench.probe.record`` (see
``bench.flow_plugin``); throughput is measured between the first and the last handler start, as in the
task-overhead benchmark. The variants run in the order given, then again in reverse, so that a drift in how
busy the shared machine is favours none of them.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import redis

from bench.config import BenchConfig
from bench.procs import REPO_ROOT, Stack, tool
from bench.stats import Benchmark, Metrics, Row, check, fmt
from bench.task_bench import drain, events, preload_ours

VARIANTS = ("before", "none", "key", "rate", "concurrency")


def baseline_tree(workdir: Path) -> Path:
    """The code before flow control, extracted into ``workdir/before`` (needs the git history), or the tree
    ``BENCH_FLOW_BEFORE`` names (a directory holding ``worker`` and ``handlers``)."""
    if os.environ.get("BENCH_FLOW_BEFORE"):
        return Path(os.environ["BENCH_FLOW_BEFORE"])
    added = subprocess.run(
        ["git", "log", "--diff-filter=A", "--format=%H", "--", "worker/execution/policy.py"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    if not added:
        raise RuntimeError(
            "no commit adds worker/execution/policy.py: the flow benchmark needs the git history"
        )
    target = workdir / "before"
    target.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "archive", f"{added[-1]}^", "worker", "handlers"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def _variant(
    stack: Stack, config: BenchConfig, redis_url: str, variant: str, before: Path
) -> dict[str, float]:
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    batch = events(config.tasks // 2, f"flow-{variant}-{uuid.uuid4().hex[:8]}")
    preload_ours(redis_url, batch)
    env = {
        "IMS_WORKER_BROKER_URL": redis_url,
        "BENCH_REDIS_URL": redis_url,
        "IMS_WORKER_HANDLER_MODULES": "bench.flow_plugin",
        "BENCH_FLOW_OPTION": "none" if variant == "before" else variant,
        "IMS_WORKER_LOG_FORMAT": "json",
    }
    if variant == "before":
        env["PYTHONPATH"] = f"{before}:{REPO_ROOT}"
    args = [
        tool("celery"), "-A", "worker.app", "worker", "-P", config.pool, "-c", str(config.concurrency),
        "-Q", "ims", "--loglevel", "INFO", "--without-mingle", "--without-gossip",
    ]  # fmt: skip
    return drain(stack.start(f"worker-flow-{variant}", args, env=env), client, len(batch), config)


def run(config: BenchConfig) -> tuple[Metrics, dict[str, Any]]:
    metrics: Metrics = {}
    with Stack(config.workdir / f"flow-{uuid.uuid4().hex[:6]}") as stack:
        redis_url = stack.redis()
        before = baseline_tree(stack.workdir)
        order = VARIANTS if config.smoke else VARIANTS + VARIANTS[::-1]
        parts = [(variant, _variant(stack, config, redis_url, variant, before)) for variant in order]
    for variant in VARIANTS:
        mine = [part for name, part in parts if name == variant]
        tasks, seconds, cpu = (sum(part[key] for part in mine) for key in ("tasks", "seconds", "cpu"))
        metrics[f"{variant}_tasks_per_s"] = tasks / seconds
        metrics[f"{variant}_cpu_ms_per_task"] = cpu / tasks * 1000
    for variant in VARIANTS[1:]:
        metrics[f"{variant}_ratio"] = metrics[f"{variant}_tasks_per_s"] / metrics["before_tasks_per_s"]
    return metrics, {"tasks": config.tasks, "pool": config.pool, "concurrency": config.concurrency}


def rows(m: Metrics, facts: dict[str, Any]) -> list[Row]:
    setting = f"{facts['pool']} x{facts['concurrency']}"
    out = [
        Row(
            "flow",
            f"no options: tasks/s ({setting})",
            fmt(m["none_tasks_per_s"]),
            fmt(m["before_tasks_per_s"]),
            fmt(m["none_ratio"], 2, "x"),
            ">= 0.95x",
            check(m["none_ratio"], 0.95, at_least=True),
        )
    ]
    for variant, label in (("key", "key=..."), ("rate", "rate=..."), ("concurrency", "concurrency=...")):
        out.append(
            Row(
                "flow",
                f"{label}: tasks/s",
                fmt(m[f"{variant}_tasks_per_s"]),
                fmt(m["before_tasks_per_s"]),
                fmt(m[f"{variant}_ratio"], 2, "x"),
            )
        )
    for variant in VARIANTS:
        out.append(Row("flow", f"{variant}: worker CPU ms per task", fmt(m[f"{variant}_cpu_ms_per_task"], 2)))
    return out


BENCHMARK = Benchmark("flow", "Flow control (options vs the wrapper before them)", run, rows)
